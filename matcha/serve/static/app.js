// Keyboard shortcuts of the review queue (listed on the page): j/k next/previous item, a approve,
// e edit, r reject. Served by Matcha itself; no inline script anywhere (the CSP forbids it).
(function () {
  "use strict";
  var items = Array.prototype.slice.call(document.querySelectorAll("article.item"));
  if (!items.length) { return; }
  var current = -1;
  function focusItem(i) {
    if (i < 0 || i >= items.length) { return; }
    if (current >= 0) { items[current].classList.remove("current"); }
    current = i;
    items[i].classList.add("current");
    items[i].focus();
    items[i].scrollIntoView({ block: "nearest" });
  }
  document.addEventListener("keydown", function (event) {
    var t = event.target;
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.isContentEditable)) { return; }
    var item = items[current < 0 ? 0 : current];
    if (event.key === "j") { focusItem(current + 1); }
    else if (event.key === "k") { focusItem(current <= 0 ? 0 : current - 1); }
    else if (event.key === "a") { var b = item.querySelector("button.approve"); if (b) { b.click(); } }
    else if (event.key === "e") {
      var d = item.querySelector("details.edit");
      if (d) { d.open = true; d.querySelector("textarea").focus(); }
    } else if (event.key === "r") { var r = item.querySelector(".reject input[name=reason]"); if (r) { r.focus(); } }
    else { return; }
    event.preventDefault();
  });
})();
