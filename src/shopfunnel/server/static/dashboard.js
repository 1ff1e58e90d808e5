// Draws every chart of the page from the JSON next to it (no inline scripts: CSP allows 'self' only).
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("script[data-chart]").forEach(function (node) {
    var fig = JSON.parse(node.textContent);
    var target = document.getElementById(node.getAttribute("data-chart"));
    window.Plotly.newPlot(target, fig.data, fig.layout || {}, { displaylogo: false, responsive: true });
  });
});
