// Owner tab: my licenses and their states, rewards and claim, delegate/undelegate, the sale, the operators.
import { formatEther, isAddress, getAddress, parseEventLogs } from "viem";
import { transact } from "./actions.js";
import { HISTORY_EPOCHS } from "./chain.js";
import { amount, h, licenseList, plural, sameAddress, shortAddress, table } from "./dom.js";
import { Sentence } from "./errors.js";

const OWNER_CHUNK = 500n; // licenses per ownersOf call
const STATES = ["free", "pending", "delegated"];

export async function load(app) {
  const { chain } = app;
  const me = app.wallet.account;
  const win = await chain.window();
  const [token, minted, tier, tiers, sold, paused, allowlistStart, publicStart, saleEnd, publicMax, block, operators] =
    await Promise.all([
      chain.token(), chain.read("AlignmentLicense", "totalMinted"), chain.read("NodeSale", "currentTier"),
      chain.read("NodeSale", "tiers"), chain.read("NodeSale", "sold"), chain.read("NodeSale", "paused"),
      chain.read("NodeSale", "allowlistStart"), chain.read("NodeSale", "publicStart"), chain.read("NodeSale", "saleEnd"),
      chain.read("NodeSale", "publicMaxPerWallet"), chain.public.getBlock(), chain.operators(win),
    ]);
  const now = block.timestamp;
  const phase = now < allowlistStart ? "not open" : now < publicStart ? "allowlist" : now < saleEnd ? "public" : "ended";
  const sale = { tierIndex: Number(tier[0]), price: tier[1], remainingInTier: tier[2], tiers: tiers.length, sold,
    total: tiers.reduce((s, t) => s + t.supply, 0n), paused, phase, publicMax: Number(publicMax), opensAt: allowlistStart };
  const data = { epoch: win.epoch, token, sale, operators, licenses: null };
  if (!me) return data;
  // My licenses: owners of every minted id, in chunks, then each of mine in detail.
  const mine = [];
  for (let lo = 1n; lo <= minted; lo += OWNER_CHUNK) {
    const ids = [];
    for (let i = lo; i < lo + OWNER_CHUNK && i <= minted; i++) ids.push(i);
    const owners = await chain.read("AlignmentLicense", "ownersOf", [ids]);
    ids.forEach((id, i) => sameAddress(owners[i], me) && mine.push(id));
  }
  data.licenses = await Promise.all(mine.map(async (id) => {
    const [[operator, state], account, claimable, lastActivePlus1] = await Promise.all([
      chain.read("OperatorRegistry", "delegationOf", [id]), chain.read("RewardVault", "accounts", [id]),
      chain.read("RewardVault", "claimable", [id]), chain.read("RewardVault", "lastActivePlus1", [id]),
    ]);
    const lastActive = lastActivePlus1 ? lastActivePlus1 - 1n : null;
    return { id, operator, state: STATES[state], suspendedUntil: BigInt(account[1]) > win.epoch ? BigInt(account[1]) : null,
      balance: account[0], claimable, lastActive };
  }));
  const [balance, native, bought] = await Promise.all([
    chain.read("RewardToken", "balanceOf", [me]), chain.public.getBalance({ address: me }),
    chain.read("NodeSale", "boughtInPublic", [me]),
  ]);
  Object.assign(data, { balance, native, bought: Number(bought) });
  return data;
}

function stateText(lic, operators) {
  const op = operators.find((o) => sameAddress(o.address, lic.operator));
  const who = op ? `${lic.operator} (${op.commissionBps / 100}% commission)` : lic.operator;
  let text = lic.state === "free" ? "owned, not delegated" : lic.state === "pending" ? `pending approval by ${who}`
    : `delegated to ${who}`;
  if (lic.suspendedUntil) text += `; suspended until epoch ${lic.suspendedUntil}`;
  return text;
}

export function view(app, data) {
  const ui = app.ui.owner;
  const { token } = data;
  const disabled = app.busy || !app.wallet.ready;
  const parts = [];

  // ---- licenses and rewards
  if (!data.licenses) {
    parts.push(h("section", null, h("h2", null, "Your licenses"),
      h("p", { class: "hint" }, "Connect a wallet to see your licenses, delegate them and claim their rewards.")));
  } else {
    const lics = data.licenses;
    ui.selected = new Set([...ui.selected].filter((id) => lics.some((l) => String(l.id) === id)));
    const claimable = lics.filter((l) => l.claimable > 0n);
    const total = claimable.reduce((s, l) => s + l.claimable, 0n);
    const debt = lics.filter((l) => l.claimable < 0n).reduce((s, l) => s + l.claimable, 0n);
    const rows = lics.map((l) => h("tr", { "data-license": String(l.id), "data-state": l.state },
      h("td", null, h("input", { type: "checkbox", name: "license", value: String(l.id), checked: ui.selected.has(String(l.id)),
        "aria-label": `select license ${l.id}`,
        onchange: (e) => (e.target.checked ? ui.selected.add(String(l.id)) : ui.selected.delete(String(l.id))) })),
      h("td", null, `#${l.id}`),
      h("td", { class: "state" }, stateText(l, data.operators)),
      h("td", null, l.lastActive === null ? "never" : l.lastActive === data.epoch ? `yes (epoch ${l.lastActive})` : `epoch ${l.lastActive}`),
      h("td", { class: "num" }, amount(l.claimable, token.decimals, token.symbol))));
    const opOptions = [h("option", { value: "" }, "choose an operator…"),
      ...data.operators.map((o) => h("option", { value: o.address, selected: sameAddress(ui.operator, o.address) },
        `${shortAddress(o.address)} — ${o.commissionBps / 100}% commission, ${plural(o.delegated, "license")}`))];
    parts.push(h("section", null,
      h("h2", null, `Your licenses (${lics.length})`),
      lics.length ? table(["", "license", "state", "active", "claimable"], rows, { id: "licenses" })
        : h("p", { class: "hint" }, "This wallet owns no license yet: buy one below."),
      h("div", { class: "actions" },
        h("select", { id: "delegate-operator", onchange: (e) => (ui.operator = e.target.value) }, opOptions),
        h("input", { id: "delegate-other", placeholder: "or an operator address 0x…", value: ui.other, size: 44,
          oninput: (e) => (ui.other = e.target.value.trim()) }),
        h("button", { id: "delegate", disabled, onclick: () => delegate(app, data) }, "Delegate selected"),
        h("button", { id: "undelegate", disabled, onclick: () => undelegate(app, data) }, "Undelegate selected")),
      h("h3", null, "Rewards"),
      h("p", { id: "rewards" },
        `Claimable now: ${amount(total, token.decimals, token.symbol)} from ${plural(claimable.length, "license")}`,
        debt < 0n ? `; debt to repay from later credit: ${amount(-debt, token.decimals, token.symbol)}` : "",
        `. Wallet balance: ${amount(data.balance, token.decimals, token.symbol)}, ${amount(data.native)} ETH for gas.`),
      h("div", { class: "actions" },
        h("button", { id: "claim", disabled: disabled || !claimable.length, onclick: () => claim(app, claimable, token) },
          `Claim ${amount(total, token.decimals, token.symbol)}`))));
  }

  // ---- sale
  const s = data.sale;
  const soldOut = s.tierIndex >= s.tiers;
  const saleText = soldOut ? `Sold out: ${s.sold} of ${s.total} licenses sold.`
    : `Phase ${s.phase}${s.paused ? " (paused)" : ""}: tier ${s.tierIndex + 1} of ${s.tiers} at ${formatEther(s.price)} ETH ` +
      `per license, ${s.remainingInTier} left in this tier; ${s.sold} of ${s.total} sold. ` +
      `At most ${s.publicMax} per wallet in the public phase${data.bought !== undefined ? ` (you bought ${data.bought})` : ""}.`;
  parts.push(h("section", null, h("h2", null, "The sale"), h("p", { id: "sale" }, saleText),
    h("div", { class: "actions" },
      h("label", null, "Licenses ", h("input", { id: "buy-qty", type: "number", min: 1, value: ui.qty, size: 4,
        oninput: (e) => (ui.qty = e.target.value) })),
      h("input", { id: "buy-promo", placeholder: "promo code (optional)", value: ui.promo,
        oninput: (e) => (ui.promo = e.target.value.trim()) }),
      h("button", { id: "buy", disabled: disabled || soldOut || s.phase !== "public", onclick: () => buy(app, token) }, "Buy")),
    s.phase === "allowlist" ? h("p", { class: "hint" }, "The allowlist phase needs a Merkle proof: buy with the CLI (sale buy --proof).") : null,
    s.phase === "not open" ? h("p", { class: "hint" }, `The sale opens on ${new Date(Number(s.opensAt) * 1000).toUTCString()}.`) : null));

  // ---- operators
  parts.push(h("section", null, h("h2", null, "Operators"),
    h("p", { class: "hint" }, "Uptime: ended epochs with a heartbeat since the operator's first heartbeat in the last " +
      `${HISTORY_EPOCHS} epochs. Penalties: misses, disagreements and traps of the licenses it served in that window.`),
    data.operators.length ? table(["operator", "commission", "licenses served", "pending", "uptime", "penalties", "about"],
      data.operators.map((o) => h("tr", { "data-operator": o.address },
        h("td", { class: "mono" }, o.address), h("td", { class: "num" }, `${o.commissionBps / 100}%`),
        h("td", { class: "num" }, o.delegated), h("td", { class: "num" }, o.pending),
        h("td", { class: "num" }, o.uptime.span ? `${Math.round((100 * o.uptime.beats) / o.uptime.span)}% (${o.uptime.beats}/${o.uptime.span})` : "-"),
        h("td", { class: "num" }, o.penalties), h("td", null, o.metadataURI))), { id: "operators" })
      : h("p", null, "No operator has registered yet.")));
  return parts;
}

function selectedLicenses(app, data, states) {
  const ids = data.licenses.filter((l) => app.ui.owner.selected.has(String(l.id)) && states.includes(l.state)).map((l) => l.id);
  if (!ids.length) throw new Sentence(`Select at least one license that is ${states.join(" or ")}.`);
  return ids;
}

function fail(app, err) {
  app.status("error", err.sentence || String(err.message || err));
}

async function buy(app, token) {
  const qty = Number(app.ui.owner.qty);
  if (!Number.isInteger(qty) || qty < 1) return fail(app, new Sentence("Buy: the number of licenses must be a whole number of at least 1."));
  let cost;
  try {
    cost = await app.chain.read("NodeSale", "quoteWithPromo", [BigInt(qty), app.ui.owner.promo]);
  } catch (err) {
    return app.status("error", app.explain(err, "Buy", "NodeSale"));
  }
  await transact(app, {
    what: "Buy", contract: "NodeSale", functionName: "buy", value: cost,
    args: [BigInt(qty), cost, app.ui.owner.promo, [], 0n],
    done: (receipt) => {
      const ev = parseEventLogs({ abi: app.chain.abis.NodeSale, logs: receipt.logs, eventName: "Purchased" })[0];
      const first = ev.args.firstTokenId;
      const last = first + ev.args.quantity - 1n;
      return `Bought ${first === last ? `license #${first}` : `licenses #${first}–#${last}`} for ${formatEther(ev.args.cost)} ETH`;
    },
  });
}

async function delegate(app, data) {
  const ui = app.ui.owner;
  try {
    const ids = selectedLicenses(app, data, ["free"]);
    const target = ui.other || ui.operator;
    if (!target) throw new Sentence("Delegate: choose an operator or type its address.");
    if (!isAddress(target)) throw new Sentence(`Delegate: "${target}" is not an address.`);
    const operator = getAddress(target);
    const self = sameAddress(operator, app.wallet.account);
    await transact(app, {
      what: "Delegate", contract: "OperatorRegistry", functionName: "delegate", args: [ids, operator], selection: ui.selected,
      done: () => `Delegated ${licenseList(ids)} to ${operator}` +
        (self ? " (yourself: delegated at once)" : ": pending until the operator approves"),
    });
  } catch (err) {
    fail(app, err);
  }
}

async function undelegate(app, data) {
  try {
    const ids = selectedLicenses(app, data, ["pending", "delegated"]);
    await transact(app, {
      what: "Undelegate", contract: "OperatorRegistry", functionName: "undelegate", args: [ids], selection: app.ui.owner.selected,
      done: () => `Took back ${licenseList(ids)}: free again`,
    });
  } catch (err) {
    fail(app, err);
  }
}

async function claim(app, claimable, token) {
  const ids = claimable.map((l) => l.id);
  await transact(app, {
    what: "Claim", contract: "RewardVault", functionName: "claim", args: [ids],
    done: (receipt) => {
      const ev = parseEventLogs({ abi: app.chain.abis.RewardVault, logs: receipt.logs, eventName: "Claimed" })[0];
      return `Claimed ${amount(ev.args.amount, token.decimals, token.symbol)} for ${licenseList(ids)}`;
    },
  });
}
