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
 *   collector ignores ids it already has).
 */
(function (w, d) {
  "use strict";
  var script = d.currentScript || d.querySelector("script[data-write-key]");
  if (!script) return;
  var host = script.getAttribute("data-host") || new URL(script.src).origin;
  var writeKey = script.getAttribute("data-write-key");
  var url = host + "/v1/batch?writeKey=" + encodeURIComponent(writeKey);
  var SESSION_MS = 30 * 60 * 1000, QKEY = "sf_q", MAX_QUEUE = 500, BATCH = 50;
  var sending = false, backoff = 1000, timer = null;

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
    pending: function () { return queue.length; }
  };
  var earlier = (w.shopfunnel && w.shopfunnel.q) || [];
  w.shopfunnel = api;
  if (script.getAttribute("data-auto-page") !== "false") api.page();
  earlier.forEach(function (call) { api[call[0]].apply(api, call[1]); });
  if (queue.length) schedule(0);
})(window, document);
