// The portal's entry point: read the node's /portal/config.json, connect the wallet, show the tabs.
// Whatever fails is said in one sentence on the page; the page is never blank.
import { Chain } from "./chain.js";
import { h, shortAddress } from "./dom.js";
import { explain } from "./errors.js";
import * as governance from "./governance.js";
import * as network from "./network.js";
import * as operator from "./operator.js";
import * as owner from "./owner.js";
import { Wallet } from "./wallet.js";

const TABS = { owner: ["Owner", owner], operator: ["Operator", operator], network: ["Network", network],
  governance: ["Governance", governance] };
const REFRESH_MS = 8000;

class App {
  constructor(cfg, root) {
    this.cfg = cfg;
    this.root = root;
    this.chain = new Chain(cfg);
    this.wallet = new Wallet(cfg, (what) => this.walletChanged(what));
    this.ui = { owner: { qty: "1", promo: "", selected: new Set(), operator: "", other: "" },
      operator: { pending: new Set(), delegated: new Set() } };
    this.data = {};
    this.loadErrors = {};
    this.busy = false;
    this.sent = [];
    this.message = { kind: "info", text: "", tx: null };
    this.tab = TABS[location.hash.slice(1)] ? location.hash.slice(1) : "owner";
    this.loading = 0;
  }

  explain(err, what, contract = null) {
    return explain(err, what, { abis: this.chain.abis, contract, rpcUrls: this.cfg.rpcUrls });
  }

  status(kind, text, tx = null) {
    this.message = { kind, text, tx };
    this.renderStatus();
  }

  async start() {
    this.root.replaceChildren(
      h("header", null, h("h1", null, "Alignment node portal"), h("div", { id: "account" })),
      h("p", { id: "status", role: "status" }),
      h("nav", { id: "tabs" }, Object.entries(TABS).map(([key, [label]]) =>
        h("button", { "data-tab": key, onclick: () => this.show(key) }, label))),
      h("main", { id: "view" }));
    window.addEventListener("hashchange", () => TABS[location.hash.slice(1)] && this.show(location.hash.slice(1)));
    if (!this.wallet.present) {
      this.status("info", "No wallet found: install a browser wallet (EIP-1193, such as MetaMask) to act; you can still read the network.");
    } else {
      try {
        await this.wallet.init();
        this.chain.setWallet(this.wallet.ethereum, this.wallet.onRightChain);
        if (this.wallet.account && !this.wallet.onRightChain) {
          this.status("error", this.wallet.wrongChainSentence('press "Switch network"'));
        }
      } catch (err) {
        this.status("error", this.explain(err, "Reading the wallet"));
      }
    }
    this.render();
    await this.refresh();
    setInterval(() => {
      const focused = document.activeElement;
      if (!this.busy && !document.hidden && !(focused && ["INPUT", "SELECT", "TEXTAREA"].includes(focused.tagName))) this.refresh();
    }, REFRESH_MS);
  }

  show(tab) {
    this.tab = tab;
    if (location.hash !== "#" + tab) history.replaceState(null, "", "#" + tab);
    this.render();
    this.refresh();
  }

  async connect() {
    try {
      await this.wallet.connect();
      if (!this.wallet.onRightChain) {
        this.status("error", this.wallet.wrongChainSentence("asking your wallet to switch"));
        const sentence = await this.wallet.switchChain();
        if (sentence) this.status("error", sentence);
      }
      if (this.wallet.onRightChain) this.status("success", `Connected ${this.wallet.account} on chain ${this.cfg.chainId}.`);
    } catch (err) {
      this.status("error", this.explain(err, "Connecting the wallet"));
    }
    this.chain.setWallet(this.wallet.ethereum, this.wallet.onRightChain);
    this.render();
    await this.refresh();
  }

  async switchChain() {
    try {
      const sentence = await this.wallet.switchChain();
      this.status(sentence ? "error" : "success", sentence || `Your wallet is on chain ${this.cfg.chainId} now.`);
    } catch (err) {
      this.status("error", this.explain(err, "Switching networks"));
    }
    this.chain.setWallet(this.wallet.ethereum, this.wallet.onRightChain);
    this.render();
    await this.refresh();
  }

  walletChanged(what) {
    this.chain.setWallet(this.wallet.ethereum, this.wallet.onRightChain);
    if (this.wallet.account && !this.wallet.onRightChain) {
      this.status("error", this.wallet.wrongChainSentence('press "Switch network"'));
    } else if (what === "chain" && this.message.kind === "error" && this.message.text.startsWith("Wrong chain")) {
      this.status("success", `Your wallet is on chain ${this.cfg.chainId} now.`);
    }
    this.render();
    this.refresh();
  }

  /** Load the current tab's data from the chain and the node, then draw it. */
  async refresh() {
    const tab = this.tab;
    this.loading++;
    try {
      this.data[tab] = await TABS[tab][1].load(this);
      this.loadErrors[tab] = null;
    } catch (err) {
      console.error(err);
      this.loadErrors[tab] = this.explain(err, `Reading the ${TABS[tab][0].toLowerCase()} view`);
    } finally {
      this.loading--;
    }
    if (tab === this.tab) this.render();
  }

  renderStatus() {
    const el = document.getElementById("status");
    if (!el) return;
    el.textContent = this.message.text;
    el.dataset.kind = this.message.kind;
    if (this.message.tx) el.dataset.tx = this.message.tx;
    else delete el.dataset.tx;
  }

  renderAccount() {
    const w = this.wallet;
    const el = document.getElementById("account");
    let content;
    if (!w.present) content = h("span", { class: "hint" }, "no wallet");
    else if (!w.account) content = h("button", { id: "connect", onclick: () => this.connect() }, "Connect wallet");
    else if (!w.onRightChain) {
      content = [h("span", { class: "mono" }, `${shortAddress(w.account)} on chain ${w.chainId}`),
        h("button", { id: "switch-chain", onclick: () => this.switchChain() }, "Switch network")];
    } else content = h("span", { id: "connected", class: "mono", title: w.account }, `${shortAddress(w.account)} · chain ${w.chainId}`);
    el.replaceChildren(...[content].flat());
  }

  render() {
    this.renderAccount();
    this.renderStatus();
    for (const button of document.querySelectorAll("#tabs button")) {
      button.classList.toggle("active", button.dataset.tab === this.tab);
    }
    const view = document.getElementById("view");
    const data = this.data[this.tab];
    const parts = [];
    if (this.loadErrors[this.tab]) parts.push(h("p", { class: "load-error", role: "alert" }, this.loadErrors[this.tab]));
    if (data) {
      try {
        parts.push(...TABS[this.tab][1].view(this, data));
      } catch (err) {
        console.error(err);
        parts.push(h("p", { class: "load-error", role: "alert" }, `The ${this.tab} view could not be drawn: ${err.message}`));
      }
    } else if (!this.loadErrors[this.tab]) parts.push(h("p", { class: "hint" }, "Loading…"));
    view.replaceChildren(...parts);
  }
}

function fatal(sentence) {
  const root = document.getElementById("app") || document.body;
  root.replaceChildren(h("h1", null, "Alignment node portal"), h("p", { id: "status", role: "alert", "data-kind": "error" }, sentence));
}

async function boot() {
  let cfg;
  try {
    const resp = await fetch("/portal/config.json", { cache: "no-store" });
    if (!resp.ok) {
      const body = await resp.json().catch(() => ({}));
      throw new Error(`HTTP ${resp.status}${body.error ? ", " + body.error : ""}`);
    }
    cfg = await resp.json();
  } catch (err) {
    fatal(`The node did not give the portal its configuration (/portal/config.json: ${err.message}).`);
    return;
  }
  const app = new App(cfg, document.getElementById("app"));
  window.addEventListener("unhandledrejection", (e) => app.status("error", app.explain(e.reason, "The portal")));
  window.addEventListener("error", (e) => app.status("error", `The portal hit an unexpected error: ${e.message}.`));
  await app.start();
}

boot().catch((err) => fatal(`The portal could not start: ${err?.message || err}.`));
