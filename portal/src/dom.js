// Small DOM helpers. Everything read from the chain is put in the page as text, never as HTML.
import { formatUnits } from "viem";

/** h("tag", {class, text, onclick, ...attributes}, ...children) */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "checked" || key === "disabled" || key === "value") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** A table: head is a list of column titles, rows a list of lists of cells (text or nodes). */
export function table(head, rows, props = {}) {
  return h("table", props,
    h("thead", null, h("tr", null, head.map((t) => h("th", null, t)))),
    h("tbody", null, rows.map((r) => (r instanceof Node ? r : h("tr", null, r.map((c) => h("td", null, c)))))));
}

/** 1234.5678901 -> "1,234.5678" (at most 4 decimals), negative values keep their sign. */
export function amount(value, decimals = 18, symbol = "") {
  const text = formatUnits(BigInt(value), decimals);
  const [whole, frac = ""] = text.split(".");
  const sign = whole.startsWith("-") ? "-" : "";
  const digits = whole.replace("-", "").replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const short = frac.slice(0, 4).replace(/0+$/, "");
  return `${sign}${digits}${short ? "." + short : ""}${symbol ? " " + symbol : ""}`;
}

export function shortAddress(address) {
  return address ? `${address.slice(0, 6)}…${address.slice(-4)}` : "";
}

export function sameAddress(a, b) {
  return Boolean(a && b) && a.toLowerCase() === b.toLowerCase();
}

/** plural(1, "license") -> "1 license"; plural(3, "license") -> "3 licenses". */
export function plural(n, word) {
  return `${n} ${word}${Number(n) === 1 ? "" : "s"}`;
}

/** [4n] -> "license #4"; [4n, 5n] -> "licenses #4, #5". */
export function licenseList(ids) {
  return `${ids.length === 1 ? "license" : "licenses"} ${ids.map((i) => "#" + i).join(", ")}`;
}
