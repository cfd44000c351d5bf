// The injected EIP-1193 wallet (window.ethereum): accounts, chain check and switch, change events.
import { getAddress } from "viem";

export class Wallet {
  constructor(cfg, onChange) {
    this.cfg = cfg;
    this.ethereum = window.ethereum || null;
    this.account = null;
    this.chainId = null;
    this.onChange = onChange;
  }

  get present() {
    return Boolean(this.ethereum && typeof this.ethereum.request === "function");
  }

  get onRightChain() {
    return this.chainId === this.cfg.chainId;
  }

  get ready() {
    return Boolean(this.account) && this.onRightChain;
  }

  /** Listen for changes and pick up an account the wallet already shares with this page (no prompt). */
  async init() {
    if (!this.present) return;
    const on = this.ethereum.on?.bind(this.ethereum);
    if (on) {
      on("accountsChanged", (accounts) => {
        this.account = accounts && accounts.length ? getAddress(accounts[0]) : null;
        this.onChange("accounts");
      });
      on("chainChanged", (chainId) => {
        this.chainId = Number(BigInt(chainId));
        this.onChange("chain");
      });
    }
    const accounts = await this.ethereum.request({ method: "eth_accounts" });
    if (accounts && accounts.length) {
      this.account = getAddress(accounts[0]);
      await this.readChain();
    }
  }

  async readChain() {
    this.chainId = Number(BigInt(await this.ethereum.request({ method: "eth_chainId" })));
    return this.chainId;
  }

  /** Ask for an account (the wallet prompts), then check the chain. */
  async connect() {
    const accounts = await this.ethereum.request({ method: "eth_requestAccounts" });
    if (!accounts || !accounts.length) throw new Error("the wallet shared no account");
    this.account = getAddress(accounts[0]);
    await this.readChain();
  }

  wrongChainSentence(extra = "") {
    return `Wrong chain: your wallet is on chain ${this.chainId}, but this network is chain ${this.cfg.chainId}` +
      `${extra ? "; " + extra : ""}.`;
  }

  /** Ask the wallet to switch to (or add) the network's chain; returns a sentence if it did not. */
  async switchChain() {
    const chainId = "0x" + this.cfg.chainId.toString(16);
    try {
      await this.ethereum.request({ method: "wallet_switchEthereumChain", params: [{ chainId }] });
    } catch (err) {
      if (err?.code === 4902) {
        try {
          await this.ethereum.request({
            method: "wallet_addEthereumChain",
            params: [{ chainId, chainName: `chain ${this.cfg.chainId}`, rpcUrls: this.cfg.rpcUrls,
              nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 } }],
          });
        } catch (addErr) {
          await this.readChain();
          return this.wrongChainSentence(`your wallet does not know it and did not add it (${addErr?.message || addErr}); ` +
            `add chain ${this.cfg.chainId} with RPC ${this.cfg.rpcUrls[0]} in your wallet`);
        }
      } else {
        await this.readChain();
        const why = err?.code === 4001 ? "you declined the switch" : `the wallet could not switch (${err?.message || err})`;
        return this.wrongChainSentence(`${why}; switch networks in your wallet or press "Switch network"`);
      }
    }
    await this.readChain();
    return this.onRightChain ? null : this.wrongChainSentence("the wallet did not switch");
  }
}
