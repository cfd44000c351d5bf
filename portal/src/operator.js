// Operator tab: licenses pending my approval (approve, force-undelegate), commission earned and claim, the
// health and last transactions of the node serving this page.
import { parseEventLogs } from "viem";
import { transact } from "./actions.js";
import { HISTORY_EPOCHS } from "./chain.js";
import { amount, h, licenseList, plural, sameAddress, shortAddress, table } from "./dom.js";

const STATES = ["free", "pending", "delegated"];

async function fetchJson(path) {
  try {
    const resp = await fetch(path, { cache: "no-store" });
    return { code: resp.status, body: await resp.json() };
  } catch (err) {
    return { code: null, body: null, error: String(err.message || err) };
  }
}

export async function load(app) {
  const { chain } = app;
  const me = app.wallet.account;
  const [health, status, txs] = await Promise.all([fetchJson("/health"), fetchJson("/status"), fetchJson("/transactions")]);
  const data = { node: { operator: app.cfg.operator, health, status, txs }, me };
  if (!me) return data;
  const win = await chain.window();
  const [token, record, booked, balance, native] = await Promise.all([
    chain.token(), chain.read("OperatorRegistry", "getOperator", [me]), chain.read("RewardVault", "commissionOf", [me]),
    chain.read("RewardToken", "balanceOf", [me]), chain.public.getBalance({ address: me }),
  ]);
  Object.assign(data, { token, record, commission: booked, balance, native, epoch: win.epoch });
  if (!record.registered) return data;
  // Candidates from the registry's events naming me; their state from eth_calls (the chain's word, not the logs').
  const [changes, credits] = await Promise.all([
    chain.eventsSinceDeploy("OperatorRegistry", "LicenseStateChanged", { operator: me }),
    chain.events("RewardVault", "OperatorBooked", { args: { operator: me }, fromBlock: win.fromBlock }),
  ]);
  const ids = [...new Set(changes.map((ev) => ev.args.tokenId))].sort((a, b) => (a < b ? -1 : 1));
  const owners = ids.length ? await chain.read("AlignmentLicense", "ownersOf", [ids]) : [];
  const licenses = await Promise.all(ids.map(async (id, i) => {
    const [[operator, state], lastActivePlus1, suspended] = await Promise.all([
      chain.read("OperatorRegistry", "delegationOf", [id]), chain.read("RewardVault", "lastActivePlus1", [id]),
      chain.read("RewardVault", "isSuspended", [id, win.epoch]),
    ]);
    return { id, owner: owners[i], operator, state: STATES[state], suspended,
      activeNow: lastActivePlus1 === win.epoch + 1n };
  }));
  data.licenses = licenses.filter((l) => l.state !== "free" && sameAddress(l.operator, me));
  // Commission is paid as each license is credited, after its debt (security review L2): what a claim crediting
  // every license served now would pay.
  data.served = data.licenses.map((l) => l.id);
  if (data.served.length) data.commission = await chain.read("RewardVault", "commissionClaimable", [me, data.served]);
  data.earned = credits.reduce((s, ev) => s + ev.args.commission, 0n);
  return data;
}

function licenseRows(list, selected, extra) {
  return list.map((l) => h("tr", { "data-license": String(l.id), "data-state": l.state },
    h("td", null, h("input", { type: "checkbox", value: String(l.id), checked: selected.has(String(l.id)),
      "aria-label": `select license ${l.id}`,
      onchange: (e) => (e.target.checked ? selected.add(String(l.id)) : selected.delete(String(l.id))) })),
    h("td", null, `#${l.id}`), h("td", { class: "mono" }, l.owner), ...extra(l)));
}

function nodeSection(app, node) {
  const { health, status, txs } = node;
  const word = health.body?.status || (health.code ? `HTTP ${health.code}` : "unreachable");
  const reasons = health.body?.reasons || (health.error ? [health.error] : []);
  const st = status.body || {};
  const hb = st.last_heartbeat;
  const rows = (txs.body?.transactions || []).map((t) => [t.purpose, t.epoch ?? "-", t.state, t.block ?? "-",
    h("span", { class: "mono" }, t.tx_hash), t.error || ""]);
  return h("section", null, h("h2", null, "This node"),
    h("p", null, `The node serving this page operates ${node.operator}.`,
      app.wallet.account && !sameAddress(app.wallet.account, node.operator)
        ? " It is not your connected account: its health is shown, not your node's." : ""),
    h("p", { id: "node-health", class: `health health-${health.code}` }, `Health: ${word}`,
      reasons.length ? ` — ${reasons.join("; ")}` : "", "."),
    hb ? h("p", null, `Last heartbeat: epoch ${hb.epoch}, ${plural(hb.licenses, "license")}, block ${hb.block}.`) : null,
    h("h3", null, "Last transactions of the node"),
    rows.length ? table(["purpose", "epoch", "state", "block", "tx", "error"], rows, { id: "node-txs" })
      : h("p", { class: "hint" }, txs.code === 200 ? "None yet." : "The node did not list its transactions."),
    app.sent.length ? [h("h3", null, "Sent from this page"),
      table(["action", "block", "result", "tx"], app.sent.map((t) => [t.what, String(t.block), t.ok ? "ok" : "reverted",
        h("span", { class: "mono" }, t.hash)]))] : null);
}

export function view(app, data) {
  const ui = app.ui.operator;
  const parts = [];
  if (!data.me) {
    parts.push(h("section", null, h("h2", null, "Operator"),
      h("p", { class: "hint" }, "Connect the operator's wallet to approve licenses and claim commission.")));
  } else if (!data.record.registered) {
    parts.push(h("section", null, h("h2", null, "Operator"),
      h("p", { id: "not-operator" }, `${data.me} is not a registered operator. Register once with a commission that ` +
        "never changes: alignment-node register-operator BPS.")));
  } else {
    const { token } = data;
    const disabled = app.busy || !app.wallet.ready;
    const pending = data.licenses.filter((l) => l.state === "pending");
    const delegated = data.licenses.filter((l) => l.state === "delegated");
    const keep = (set, list) => new Set([...set].filter((id) => list.some((l) => String(l.id) === id)));
    ui.pending = keep(ui.pending, pending);
    ui.delegated = keep(ui.delegated, delegated);
    parts.push(h("section", null,
      h("h2", null, `Operator ${shortAddress(data.me)}`),
      h("p", { id: "operator-record" }, `Commission ${data.record.commissionBps / 100}% (fixed), ` +
        `${plural(data.record.delegated, "license")} served, ${data.record.pending} pending. Gas money: ${amount(data.native)} ETH.`),
      h("h3", null, `Pending approval (${pending.length})`),
      pending.length ? table(["", "license", "owner"], licenseRows(pending, ui.pending, () => []), { id: "pending" })
        : h("p", { class: "hint" }, "No license waits for your approval."),
      h("div", { class: "actions" },
        h("button", { id: "approve", disabled: disabled || !pending.length, onclick: () => act(app, "approve", [ui.pending]) },
          "Approve selected"),
        h("button", { id: "force-undelegate", disabled: disabled || !data.licenses.length,
          onclick: () => act(app, "forceUndelegate", [ui.pending, ui.delegated]) }, "Drop selected")),
      h("h3", null, `Served (${delegated.length})`),
      delegated.length ? table(["", "license", "owner", "active this epoch", "suspended"],
        licenseRows(delegated, ui.delegated, (l) => [h("td", null, l.activeNow ? "yes" : "no"), h("td", null, l.suspended ? "yes" : "no")]),
        { id: "served" }) : h("p", { class: "hint" }, "No license is delegated to you yet."),
      h("h3", null, "Commission"),
      h("p", { id: "commission" }, `Claimable: ${amount(data.commission, token.decimals, token.symbol)}; earned in the last ` +
        `${HISTORY_EPOCHS} epochs: ${amount(data.earned, token.decimals, token.symbol)}; wallet: ${amount(data.balance, token.decimals, token.symbol)}.`),
      h("div", { class: "actions" }, h("button", { id: "claim-commission", disabled: disabled || data.commission === 0n,
        onclick: () => claimCommission(app, token, data.served) }, "Claim commission"))));
  }
  parts.push(nodeSection(app, data.node));
  return parts;
}

async function act(app, functionName, selections) {
  const ids = selections.flatMap((set) => [...set]).map(BigInt);
  if (!ids.length) return app.status("error", "Select at least one license first.");
  const what = functionName === "approve" ? "Approve" : "Drop";
  await transact(app, {
    what, contract: "OperatorRegistry", functionName, args: [ids], selection: selections,
    done: () => `${functionName === "approve" ? "Approved" : "Dropped"} ${licenseList(ids)}`,
  });
}

async function claimCommission(app, token, served) {
  await transact(app, {
    what: "Claim commission", contract: "RewardVault",
    ...(served.length ? { functionName: "claimCommissionFor", args: [served] } : { functionName: "claimCommission" }),
    done: (receipt) => {
      const ev = parseEventLogs({ abi: app.chain.abis.RewardVault, logs: receipt.logs, eventName: "CommissionClaimed" })[0];
      return `Claimed ${amount(ev.args.amount, token.decimals, token.symbol)} of commission`;
    },
  });
}
