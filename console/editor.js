/* Tandem console: a small Python code editor. A transparent <textarea>
 * lies over a <pre> that shows the same text highlighted, next to a
 * line-number gutter. Highlighting builds DOM text nodes, never HTML
 * strings, so nothing in the code can become markup. */
"use strict";

var TandemEditor = (function () {
  var KEYWORDS = new Set(("False None True and as assert async await break class continue def del " +
    "elif else except finally for from global if import in is lambda nonlocal not or pass raise " +
    "return try while with yield").split(" "));
  /* one pass over the text: comments, strings (triple, prefixed), decorators, numbers, names */
  var TOKEN = /(#[^\n]*)|([rRbBuUfF]{0,2}(?:"""[\s\S]*?(?:"""|$)|'''[\s\S]*?(?:'''|$)|"(?:[^"\\\n]|\\.)*(?:"|$)|'(?:[^'\\\n]|\\.)*(?:'|$)))|(@[\w.]+)|(\b\d[\d_]*(?:\.\d+)?(?:[eE][+-]?\d+)?\b)|([A-Za-z_]\w*)/gm;

  function highlight(text) {
    var frag = document.createDocumentFragment();
    var last = 0, m, prevDef = false;
    TOKEN.lastIndex = 0;
    function span(cls, s) {
      var e = document.createElement("span");
      e.className = cls;
      e.textContent = s;
      frag.appendChild(e);
    }
    while ((m = TOKEN.exec(text)) !== null) {
      if (m[0] === "") { TOKEN.lastIndex++; continue; }
      if (m.index > last) frag.appendChild(document.createTextNode(text.slice(last, m.index)));
      last = m.index + m[0].length;
      if (m[1]) span("tok-com", m[1]);
      else if (m[2]) span("tok-str", m[2]);
      else if (m[3]) span("tok-dec", m[3]);
      else if (m[4]) span("tok-num", m[4]);
      else if (m[5] && KEYWORDS.has(m[5])) { span("tok-kw", m[5]); prevDef = m[5] === "def" || m[5] === "class"; continue; }
      else if (m[5] && prevDef) span("tok-def", m[5]);
      else frag.appendChild(document.createTextNode(m[0]));
      prevDef = false;
    }
    if (last < text.length) frag.appendChild(document.createTextNode(text.slice(last)));
    /* a trailing newline needs a character after it to take up a line in <pre> */
    frag.appendChild(document.createTextNode("\n "));
    return frag;
  }

  function create(parent, text) {
    var box = document.createElement("div");
    box.className = "editor";
    var gutter = document.createElement("div");
    gutter.className = "gutter";
    gutter.setAttribute("aria-hidden", "true");
    var area = document.createElement("div");
    area.className = "area";
    var pre = document.createElement("pre");
    pre.setAttribute("aria-hidden", "true");
    var ta = document.createElement("textarea");
    ta.spellcheck = false;
    ta.setAttribute("aria-label", "code");
    ta.setAttribute("autocapitalize", "off");
    ta.value = text || "";
    area.appendChild(pre);
    area.appendChild(ta);
    box.appendChild(gutter);
    box.appendChild(area);
    parent.appendChild(box);
    var badLine = 0;

    function render() {
      pre.replaceChildren(highlight(ta.value));
      var n = ta.value.split("\n").length;
      var g = document.createDocumentFragment();
      for (var i = 1; i <= n; i++) {
        var d = document.createElement("div");
        d.textContent = String(i);
        if (i === badLine) d.className = "badline";
        g.appendChild(d);
      }
      gutter.replaceChildren(g);
      sync();
    }
    function sync() {
      pre.scrollTop = ta.scrollTop;
      pre.scrollLeft = ta.scrollLeft;
      gutter.scrollTop = ta.scrollTop;
    }
    ta.addEventListener("input", function () { badLine = 0; render(); });
    ta.addEventListener("scroll", sync);
    /* Tab indents with four spaces; Escape then Tab leaves the editor (keyboard users) */
    var escaped = false;
    ta.addEventListener("keydown", function (ev) {
      if (ev.key === "Escape") { escaped = true; return; }
      if (ev.key === "Tab" && !ev.shiftKey && !escaped && !ev.ctrlKey && !ev.altKey) {
        ev.preventDefault();
        var s = ta.selectionStart, e = ta.selectionEnd;
        ta.setRangeText("    ", s, e, "end");
        render();
      }
      escaped = false;
    });
    render();
    return {
      el: box,
      textarea: ta,
      get value() { return ta.value; },
      set value(v) { ta.value = v; badLine = 0; render(); },
      markLine: function (n) {
        badLine = n || 0;
        render();
        if (n) ta.scrollTop = Math.max(0, (n - 5) * 19);
        sync();
      },
    };
  }

  return { create: create, highlight: highlight };
})();
