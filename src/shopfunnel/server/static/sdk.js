/* shopfunnel tracking snippet. No build step, no dependencies.
 *
 *   <script src="https://COLLECTOR/sdk.js" data-write-key="sfk_..." async></script>
 *   <script>
 *     window.shopfunnel = window.shopfunnel || {q: []};
 *     ["track", "identify", "page", "flush"].forEach(function (m) {
 *       window.shopfunnel[m] = window.shopfunnel[m] || function () { window.shopfunnel.q.push([m, arguments]); };
 *     });
 *     shopfunnel.track("add_to_cart", {value: 19.9, currency: "EUR", items: [{item_id: "sku-1", price: 19.9, quantity: 1}]});
 *   </script>
 *
 * - an anonymous id in a first-party cookie (sf_aid, 2 years), a session id that starts
 *   anew after 30 minutes of inactivity (sf_sid);
 * - a page_view on load (data-auto-page="false" turns it off), with the page's UTM
 *   parameters and the referrer (when it is another site);
 * - track(event, props): order_id, value, currency and items become canonical fields,
 *   the rest goes into properties; identify(userId) links this browser to a customer;
 * - events wait in localStorage and are sent in batches every second, with sendBeacon
 *   when the page is hidden; failed sends are retried with the same event ids (the
 *   collector ignores ids it already has);
 * - experiment(key, weights) (after the script has loaded) returns this browser's variant
 *   (0 = control) and tracks one experiment_exposure per key and page; weights is a number
 *   of equal arms (default 2) or the arms' shares, e.g. [0.8, 0.2]. assign(key, id, weights)
 *   and inHoldout(key, id, share) are the pure functions, the same as the server's
 *   shopfunnel.experiments.assignment (GrowthBook's FNV-1a hash version 2).
 */
(function (w, d) {
  "use strict";
  var script = d.currentScript || d.querySelector("script[data-write-key]");
  if (!script) return;
  var host = script.getAttribute("data-host") || new URL(script.src).origin;
  var writeKey = script.getAttribute("data-write-key");
  var url = host + "/v1/batch?writeKey=" + encodeURIComponent(writeKey);
  var SESSION_MS = 30 * 60 * 1000, QKEY = "sf_q", MAX_QUEUE = 500, BATCH = 50;
  var sending = false, backoff = 1000, timer = null, exposed = {};

  function uuid() {
    if (w.crypto && w.crypto.randomUUID) return w.crypto.randomUUID();
    return "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".replace(/[xy]/g, function (c) {
      var r = (Math.random() * 16) | 0;
      return (c === "x" ? r : (r & 3) | 8).toString(16);
    });
  }
  function getCookie(name) {
    var m = d.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return m ? decodeURIComponent(m[1]) : null;
  }
  function setCookie(name, value, seconds) {
    d.cookie = name + "=" + encodeURIComponent(value) + "; Max-Age=" + seconds + "; Path=/; SameSite=Lax" +
      (location.protocol === "https:" ? "; Secure" : "");
  }
  function load(key, fallback) {
    try { var v = w.localStorage.getItem(key); return v ? JSON.parse(v) : fallback; } catch (e) { return fallback; }
  }
  function save(key, value) {
    try { w.localStorage.setItem(key, JSON.stringify(value)); } catch (e) { /* private mode: memory only */ }
  }

  /* assignment: GrowthBook's hash v2, as shopfunnel/experiments/assignment.py (keep in step) */
  function fnv1a32(str) {
    var h = 0x811c9dc5;
    for (var i = 0; i < str.length; i++) { h ^= str.charCodeAt(i); h = Math.imul(h, 0x01000193); }
    return h >>> 0;
  }
  function hashUnit(seed, value) { return (fnv1a32(String(fnv1a32(seed + value))) % 10000) / 10000; }
  function shares(weights) {
    if (weights == null) weights = 2;
    if (typeof weights === "number") {
      if (weights !== Math.floor(weights) || weights < 2) throw new Error("shopfunnel: an experiment has at least 2 arms");
      var equal = [];
      for (var i = 0; i < weights; i++) equal.push(1 / weights);
      return equal;
    }
    var total = 0;
    for (var j = 0; j < weights.length; j++) {
      if (!(weights[j] >= 0 && weights[j] <= 1)) throw new Error("shopfunnel: weights are shares between 0 and 1");
      total += weights[j];
    }
    if (weights.length < 2 || Math.abs(total - 1) > 1e-6) throw new Error("shopfunnel: weights must sum to 1");
    return weights.slice();
  }
  function assign(key, id, weights) {
    if (typeof key !== "string" || !key) throw new Error("shopfunnel: an experiment key is a non-empty string");
    var w = shares(weights), n = hashUnit(key, String(id)), start = 0;
    for (var i = 0; i < w.length; i++) {
      var end = start + w[i];
      if (n >= start && n < end) return i;
      start = end;
    }
    return -1;
  }
  function inHoldout(key, id, share) {
    if (typeof key !== "string" || !key) throw new Error("shopfunnel: a holdout key is a non-empty string");
    if (!(share >= 0 && share <= 1)) throw new Error("shopfunnel: a holdout share is between 0 and 1");
    return hashUnit("holdout:" + key, String(id)) < share;
  }

  var anonymousId = getCookie("sf_aid") || uuid();
  setCookie("sf_aid", anonymousId, 2 * 365 * 86400);
  var userId = load("sf_uid", null);
  var queue = load(QKEY, []);

  function sessionId() {
    var now = Date.now(), raw = getCookie("sf_sid"), parts = raw ? raw.split(".") : null;
    var id = parts && now - Number(parts[1]) < SESSION_MS ? parts[0] : uuid();
    setCookie("sf_sid", id + "." + now, SESSION_MS / 1000);
    return id;
  }
  var params = new URLSearchParams(location.search);
  var utm = {};
  ["utm_source", "utm_medium", "utm_campaign"].forEach(function (k) { if (params.get(k)) utm[k] = params.get(k); });
  var referrer = null;
  try { if (d.referrer && new URL(d.referrer).host !== location.host) referrer = d.referrer; } catch (e) { /* ignore */ }
  var ua = navigator.userAgent.toLowerCase();
  var device = /ipad|tablet|android(?!.*mobile)/.test(ua) ? "tablet" : /mobi|iphone|ipod|android|phone/.test(ua) ? "mobile" : "desktop";

  function enqueue(name, props) {
    props = props || {};
    var event = {
      event_id: uuid(), ts: new Date().toISOString(), event: String(name), anonymous_id: anonymousId,
      session_id: sessionId(), page: location.href, device: device
    };
    if (userId) event.user_id = userId;
    if (referrer) event.referrer = referrer;
    for (var k in utm) event[k] = utm[k];
    var rest = {}, any = false;
    for (var p in props) {
      if (p === "order_id" || p === "currency") event[p] = String(props[p]);
      else if (p === "value") event.value = Number(props[p]);
      else if (p === "items") event.items = props.items;
      else { rest[p] = props[p]; any = true; }
    }
    if (any) event.properties = rest;
    queue.push(event);
    if (queue.length > MAX_QUEUE) queue.splice(0, queue.length - MAX_QUEUE);
    save(QKEY, queue);
    schedule(1000);
  }
  function schedule(ms) {
    if (!timer) timer = setTimeout(function () { timer = null; flush(); }, ms);
  }
  function flush() {
    if (sending || !queue.length) return;
    sending = true;
    var batch = queue.slice(0, BATCH);
    fetch(url, { method: "POST", body: JSON.stringify({ batch: batch }), keepalive: true,
                 headers: { "Content-Type": "text/plain" }, credentials: "omit" })
      .then(function (r) {
        sending = false;
        if (r.status === 429 || r.status >= 500) throw new Error("retry");
        // 2xx: stored (or rejected for good, reasons in the answer); other 4xx will not get better
        var sent = {};
        batch.forEach(function (e) { sent[e.event_id] = true; });
        queue = queue.filter(function (e) { return !sent[e.event_id]; });
        save(QKEY, queue);
        backoff = 1000;
        if (queue.length) schedule(0);
      })
      .catch(function () {
        sending = false;
        backoff = Math.min(backoff * 2, 60000);
        schedule(backoff);
      });
  }
  function beacon() {
    if (!queue.length || !navigator.sendBeacon) return;
    var batch = queue.slice(0, BATCH);
    var blob = new Blob([JSON.stringify({ batch: batch })], { type: "text/plain" });
    if (navigator.sendBeacon(url, blob)) {
      queue = queue.slice(batch.length);
      save(QKEY, queue);
    }
  }
  d.addEventListener("visibilitychange", function () { if (d.visibilityState === "hidden") beacon(); });
  w.addEventListener("pagehide", beacon);

  var api = {
    track: function (name, props) { enqueue(name, props); },
    page: function (props) { enqueue("page_view", props); },
    identify: function (id, traits) {
      userId = id == null ? null : String(id);
      save("sf_uid", userId);
      enqueue("identify", traits);
    },
    flush: function () { flush(); },
    anonymousId: function () { return anonymousId; },
    experiment: function (key, weights) {
      var variant = assign(key, anonymousId, weights);
      if (!exposed[key]) {
        exposed[key] = true;
        enqueue("experiment_exposure", { experiment: key, variant: String(variant) });
      }
      return variant;
    },
    assign: assign,
    inHoldout: inHoldout,
    pending: function () { return queue.length; }
  };
  var earlier = (w.shopfunnel && w.shopfunnel.q) || [];
  w.shopfunnel = api;
  if (script.getAttribute("data-auto-page") !== "false") api.page();
  earlier.forEach(function (call) { api[call[0]].apply(api, call[1]); });
  if (queue.length) schedule(0);
})(window, document);
