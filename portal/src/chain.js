// Chain access with viem: reads go to the RPC endpoints the node uses (and to the wallet when it is on the
// right chain), writes go through the wallet. Logs are read in chunks.
import { createPublicClient, createWalletClient, custom, defineChain, fallback, http } from "viem";

const LOG_CHUNK = 20_000n; // blocks per eth_getLogs request
const REORG_BLOCKS = 12n; // blocks read again by eventsSinceDeploy
export const HISTORY_EPOCHS = 24; // epochs the views look back (chart, uptime, outcomes)

export function makeChain(cfg) {
  return defineChain({
    id: cfg.chainId,
    name: cfg.chainName || `chain ${cfg.chainId}`,
    nativeCurrency: { name: "Ether", symbol: cfg.nativeSymbol || "ETH", decimals: 18 },
    rpcUrls: { default: { http: cfg.rpcUrls } },
  });
}

export class Chain {
  constructor(cfg) {
    this.cfg = cfg;
    this.chain = makeChain(cfg);
    this.abis = cfg.abis;
    this.address = cfg.contracts;
    this.cache = new Map();
    this.setWallet(null, false);
  }

  /** Rebuild the clients when the wallet appears or changes chain. */
  setWallet(ethereum, onRightChain) {
    const transports = this.cfg.rpcUrls.map((url) => http(url, { batch: { wait: 0 }, retryCount: 1, timeout: 10_000 }));
    if (ethereum && onRightChain) transports.push(custom(ethereum)); // when the node's RPC is not reachable from here
    this.public = createPublicClient({
      chain: this.chain,
      transport: transports.length === 1 ? transports[0] : fallback(transports),
      pollingInterval: this.cfg.pollIntervalMs || 1000,
    });
    this.wallet = ethereum ? createWalletClient({ chain: this.chain, transport: custom(ethereum) }) : null;
  }

  read(contract, functionName, args = []) {
    return this.public.readContract({ address: this.address[contract], abi: this.abis[contract], functionName, args });
  }

  /** Decoded events of `contract` from `fromBlock` to the head (or `toBlock`), oldest first. */
  async events(contract, eventName, { args, fromBlock, toBlock } = {}) {
    const head = toBlock ?? (await this.public.getBlockNumber());
    const deploy = BigInt(this.cfg.deployBlock);
    const out = [];
    for (let lo = fromBlock !== undefined && BigInt(fromBlock) > deploy ? BigInt(fromBlock) : deploy; lo <= head; lo += LOG_CHUNK) {
      const hi = lo + LOG_CHUNK - 1n < head ? lo + LOG_CHUNK - 1n : head;
      out.push(...(await this.public.getContractEvents({
        address: this.address[contract], abi: this.abis[contract], eventName, args, fromBlock: lo, toBlock: hi,
      })));
    }
    return out;
  }

  /** Events of one filter since deployment, read incrementally: after the first call only new blocks (and the
   *  last REORG_BLOCKS again, so a reorganised block cannot leave a stale log behind). */
  async eventsSinceDeploy(contract, eventName, args) {
    const key = JSON.stringify([contract, eventName, args || null]);
    const deploy = BigInt(this.cfg.deployBlock);
    const head = await this.public.getBlockNumber();
    const cached = this.cache.get(key) || { to: deploy - 1n, logs: [] };
    const from = cached.to - REORG_BLOCKS + 1n > deploy ? cached.to - REORG_BLOCKS + 1n : deploy;
    const fresh = await this.events(contract, eventName, { args, fromBlock: from, toBlock: head });
    const logs = cached.logs.filter((log) => log.blockNumber < from).concat(fresh);
    this.cache.set(key, { to: head, logs });
    return logs;
  }

  /** The current epoch, the first epoch of the history window and the block it starts at. */
  async window() {
    const epoch = await this.read("AuditProtocol", "currentEpoch");
    const first = epoch >= BigInt(HISTORY_EPOCHS - 1) ? epoch - BigInt(HISTORY_EPOCHS - 1) : 0n;
    const start = await this.read("AuditProtocol", "epochStartBlock", [first]);
    const deploy = BigInt(this.cfg.deployBlock);
    return { epoch, first, fromBlock: start > deploy ? start : deploy };
  }

  /** Operators with their record, uptime and penalties over the history window. */
  async operators(win) {
    const count = await this.read("OperatorRegistry", "operatorCount");
    const addresses = await Promise.all(
      Array.from({ length: Number(count) }, (_, i) => this.read("OperatorRegistry", "operatorList", [BigInt(i)])));
    const records = await Promise.all(addresses.map((a) => this.read("OperatorRegistry", "getOperator", [a])));
    // Presence is per operator (issue 16): its Present events give its uptime. A penalty is the operator's whose
    // list held the license when the penalized epoch began: the license's last delegation change before then.
    const [present, penalties, changes] = await Promise.all([
      this.events("RewardVault", "Present", { fromBlock: win.fromBlock }),
      this.events("RewardVault", "Penalized", { fromBlock: win.fromBlock }),
      this.eventsSinceDeploy("OperatorRegistry", "LicenseStateChanged"),
    ]);
    const beatEpochs = new Map(); // operator -> Set(epoch)
    for (const ev of present) {
      const op = ev.args.operator.toLowerCase();
      if (!beatEpochs.has(op)) beatEpochs.set(op, new Set());
      beatEpochs.get(op).add(ev.args.epoch);
    }
    const starts = new Map(); // epoch -> its first block
    await Promise.all([...new Set(penalties.map((ev) => ev.args.epoch))].map(async (e) =>
      starts.set(e, await this.read("AuditProtocol", "epochStartBlock", [e]))));
    const penaltyCount = new Map();
    for (const ev of penalties) {
      const before = changes.filter((c) => c.args.tokenId === ev.args.tokenId && c.blockNumber < starts.get(ev.args.epoch));
      const last = before[before.length - 1];
      if (!last || Number(last.args.state) !== 2) continue; // not Delegated when the epoch began
      const op = last.args.operator.toLowerCase();
      penaltyCount.set(op, (penaltyCount.get(op) || 0) + 1);
    }
    return addresses.map((address, i) => {
      const r = records[i];
      const epochs = [...(beatEpochs.get(address.toLowerCase()) || [])].filter((e) => e >= win.first && e < win.epoch);
      const since = epochs.length ? epochs.reduce((a, b) => (a < b ? a : b)) : null;
      const span = since === null ? 0 : Number(win.epoch - since);
      return {
        address, commissionBps: Number(r.commissionBps), delegated: Number(r.delegated), pending: Number(r.pending),
        metadataURI: r.metadataURI, uptime: { beats: epochs.length, span },
        penalties: penaltyCount.get(address.toLowerCase()) || 0,
      };
    });
  }

  /** Reward token decimals and symbol (cached). */
  async token() {
    if (!this._token) {
      const [decimals, symbol] = await Promise.all([this.read("RewardToken", "decimals"), this.read("RewardToken", "symbol")]);
      this._token = { decimals: Number(decimals), symbol };
    }
    return this._token;
  }
}
