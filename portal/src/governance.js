// Governance tab: the Governor's proposals (state, votes, quorum at the snapshot, deadline, each action decoded
// from the ABIs), the connected holder's voting power and delegate, voting, queueing and executing, and a form
// that builds a proposal and shows its decoded calldata before anything is signed.
import { decodeFunctionData, encodeFunctionData, getAddress, isAddress, isHex, keccak256, parseEventLogs, toBytes } from "viem";
import { transact } from "./actions.js";
import { h, plural, sameAddress, shortAddress } from "./dom.js";
import { Sentence } from "./errors.js";

const GOVERNOR = "AlignmentGovernor";
const LICENSE = "AlignmentLicense";
// IGovernor.ProposalState, in order.
const STATES = ["Pending", "Active", "Canceled", "Defeated", "Succeeded", "Queued", "Expired", "Executed"];
const OPEN = new Set(["Pending", "Active", "Succeeded", "Queued"]);
const SUPPORT = [["for", 1, "For"], ["against", 0, "Against"], ["abstain", 2, "Abstain"]];
const TARGET_KINDS = [[1, "EVM RPC"], [2, "CometBFT"], [3, "0G Storage"], [4, "0G DA signer"], [5, "model"]];

// What the form can propose: each kind's contract, function, fields and how the fields become arguments.
const PROPOSALS = {
  setParams: {
    label: "AuditProtocol: change the audit parameters (setParams)",
    contract: "AuditProtocol", functionName: "setParams",
    fields: [["revealBlocks", "reveal blocks", 32], ["committeeSize", "committee size", 16],
      ["minReveals", "minimum reveals", 16], ["maxCommittee", "maximum committee", 16]],
    defaults: (data) => data.params,
    args: (v) => [{ revealBlocks: Number(v.revealBlocks), committeeSize: Number(v.committeeSize),
      minReveals: Number(v.minReveals), maxCommittee: Number(v.maxCommittee) }],
  },
  setEpochLength: {
    label: "AuditProtocol: change the epoch length (setEpochLength)",
    contract: "AuditProtocol", functionName: "setEpochLength",
    fields: [["length", "epoch length (blocks)", 32]],
    defaults: (data) => ({ length: data.epochLength }),
    args: (v) => [Number(v.length)],
  },
  addTarget: {
    label: "TargetRegistry: add a target (addTarget)",
    contract: "TargetRegistry", functionName: "addTarget",
    fields: [["kind", "kind", 8], ["endpoint", "endpoint", "string"], ["identity", "identity (hex bytes)", "bytes"]],
    defaults: () => ({ kind: "1", endpoint: "", identity: "0x" }),
    args: (v) => [Number(v.kind), v.endpoint, v.identity],
  },
};

export async function load(app) {
  const { chain } = app;
  if (!chain.address[GOVERNOR] || !chain.abis[GOVERNOR]) return { missing: true };
  const me = app.wallet.account;
  const gov = (fn, args) => chain.read(GOVERNOR, fn, args);
  const [head, delay, period, threshold, quorumPercent, minDelay, params, epochLength, created] = await Promise.all([
    chain.public.getBlock(), gov("votingDelay"), gov("votingPeriod"), gov("proposalThreshold"), gov("quorumNumerator"),
    chain.address.Timelock ? chain.read("Timelock", "getMinDelay") : null,
    chain.read("AuditProtocol", "params"), chain.read("AuditProtocol", "epochLength"),
    chain.eventsSinceDeploy(GOVERNOR, "ProposalCreated"),
  ]);
  const proposals = await Promise.all(created.map(async (ev) => {
    const a = ev.args;
    const id = a.proposalId;
    const [state, votes, snapshot, deadline, eta] = await Promise.all([
      gov("state", [id]), gov("proposalVotes", [id]), gov("proposalSnapshot", [id]), gov("proposalDeadline", [id]),
      gov("proposalEta", [id]),
    ]);
    // The quorum is read at the snapshot once it is past; before that, at the latest block (marked "now").
    const snapshotPast = snapshot < head.number;
    const at = snapshotPast ? snapshot : head.number - 1n;
    const [quorum, supply] = await Promise.all([gov("quorum", [at]), chain.read(LICENSE, "getPastTotalSupply", [at])]);
    const p = {
      id, proposer: a.proposer, description: a.description, state: STATES[Number(state)],
      against: votes[0], for: votes[1], abstain: votes[2], quorum, supply, quorumNow: !snapshotPast, snapshot, deadline, eta,
      targets: a.targets, values: a.values, calldatas: a.calldatas,
      actions: a.targets.map((t, i) => decodeAction(chain, t, a.calldatas[i], a.values[i])),
      block: ev.blockNumber,
    };
    if (me) {
      const [voted, weight] = await Promise.all([gov("hasVoted", [id, me]), snapshotPast ? gov("getVotes", [me, snapshot]) : null]);
      Object.assign(p, { voted, weight });
    }
    return p;
  }));
  proposals.sort((x, y) => (x.block === y.block ? 0 : x.block < y.block ? 1 : -1)); // newest first
  const data = {
    head: { number: head.number, timestamp: head.timestamp }, delay, period, threshold, quorumPercent, minDelay,
    params: { revealBlocks: params[0], committeeSize: params[1], minReveals: params[2], maxCommittee: params[3] },
    epochLength, proposals, me: null,
  };
  if (me) {
    const [votes, delegate, balance] = await Promise.all([
      chain.read(LICENSE, "getVotes", [me]), chain.read(LICENSE, "delegates", [me]), chain.read(LICENSE, "balanceOf", [me]),
    ]);
    data.me = { votes, delegate, balance };
  }
  return data;
}

/** One action of a proposal as {contract, address, functionName, args: [[name, text]], value, raw}. */
export function decodeAction(chain, target, calldata, value = 0n) {
  const contract = Object.keys(chain.address).find((name) => sameAddress(chain.address[name], target)) || null;
  const out = { contract, address: target, functionName: null, args: [], value, raw: calldata };
  if (!contract || !chain.abis[contract]) return out;
  try {
    const { functionName, args = [] } = decodeFunctionData({ abi: chain.abis[contract], data: calldata });
    const item = chain.abis[contract].find((i) => i.type === "function" && i.name === functionName &&
      i.inputs.length === args.length);
    out.functionName = functionName;
    out.args = args.map((v, i) => [item?.inputs[i]?.name || `arg${i}`, formatValue(v, item?.inputs[i])]);
  } catch {
    // calldata that no function of the contract's ABI matches: shown raw
  }
  return out;
}

function formatValue(value, param) {
  if (Array.isArray(value) && param?.type?.endsWith("]")) {
    const inner = { ...param, type: param.type.slice(0, param.type.lastIndexOf("[")) };
    return `[${value.map((v) => formatValue(v, inner)).join(", ")}]`;
  }
  if (param?.type === "tuple") {
    const comps = param.components || [];
    return `{${comps.map((c, i) => `${c.name || i}: ${formatValue(Array.isArray(value) ? value[i] : value[c.name], c)}`).join(", ")}}`;
  }
  if (typeof value === "string" && param?.type === "string") return JSON.stringify(value);
  return String(value);
}

export function actionText(a) {
  const who = a.contract ? `${a.contract} (${a.address})` : `unknown contract ${a.address}`;
  const call = a.functionName ? `${a.functionName}(${a.args.map(([n, v]) => `${n}: ${v}`).join(", ")})`
    : `undecoded calldata ${a.raw}`;
  return `${who}.${call}${a.value ? ` with ${a.value} wei` : ""}`;
}

function shortId(id) {
  const hex = id.toString(16).padStart(64, "0");
  return `0x${hex.slice(0, 8)}…${hex.slice(-4)}`;
}

export function view(app, data) {
  if (data.missing) {
    return [h("section", null, h("h2", null, "Governance"),
      h("p", { class: "hint" }, "This deployment's manifest has no AlignmentGovernor: nothing to govern from here."))];
  }
  const ui = app.ui.governance || (app.ui.governance = { kind: "setParams", values: {}, description: "", delegateTo: "" });
  const disabled = app.busy || !app.wallet.ready;
  const parts = [];

  // ---- my votes
  const rules = `Voting opens ${plural(data.delay, "block")} after a proposal and lasts ${plural(data.period, "block")}; ` +
    `a proposer needs ${plural(data.threshold, "vote")}; the quorum is ${data.quorumPercent}% of all license votes ` +
    `(for + abstain)${data.minDelay !== null ? `; passed proposals wait ${data.minDelay} s in the timelock` : ""}. ` +
    `Latest block ${data.head.number}.`;
  let mine;
  if (!data.me) mine = h("p", { class: "hint" }, "Connect a wallet to see your voting power, delegate it and vote.");
  else {
    const d = data.me.delegate;
    const delegateText = /^0x0{40}$/i.test(d) ? "nobody (your licenses do not vote until you delegate)"
      : sameAddress(d, app.wallet.account) ? "you" : d;
    mine = [
      h("p", { id: "gov-power" }, `Voting power: ${plural(data.me.votes, "vote")}. You hold ${plural(data.me.balance, "license")}; ` +
        "their votes go to ", h("span", { id: "gov-delegate", "data-delegate": d }, delegateText), "."),
      h("div", { class: "actions" },
        h("button", { id: "gov-delegate-self", disabled, onclick: () => delegate(app, app.wallet.account) }, "Delegate to myself"),
        h("input", { id: "gov-delegate-to", placeholder: "delegate address 0x…", size: 44, value: ui.delegateTo,
          oninput: (e) => (ui.delegateTo = e.target.value.trim()) }),
        h("button", { id: "gov-delegate-other", disabled, onclick: () => delegate(app, ui.delegateTo) }, "Delegate to address")),
    ];
  }
  parts.push(h("section", null, h("h2", null, "Your votes"), h("p", { class: "hint" }, rules), mine));

  // ---- proposals
  const open = data.proposals.filter((p) => OPEN.has(p.state));
  const past = data.proposals.filter((p) => !OPEN.has(p.state));
  parts.push(h("section", null, h("h2", null, `Open proposals (${open.length})`),
    open.length ? h("div", { id: "open-proposals" }, open.map((p) => proposalView(app, data, p, disabled)))
      : h("p", { class: "hint" }, "No open proposal.")));
  parts.push(h("section", null, h("h2", null, `Past proposals (${past.length})`),
    past.length ? h("div", { id: "past-proposals" }, past.map((p) => proposalView(app, data, p, disabled)))
      : h("p", { class: "hint" }, "None yet.")));

  // ---- new proposal
  parts.push(formView(app, data, ui, disabled));
  return parts;
}

function proposalView(app, data, p, disabled) {
  const [f, ag, ab] = [p.for, p.against, p.abstain].map(String);
  const reached = p.for + p.abstain >= p.quorum;
  const now = data.head;
  let when;
  if (p.state === "Pending") when = `voting opens after block ${p.snapshot} (${p.snapshot - now.number + 1n} blocks)`;
  else if (p.state === "Active") when = `voting ends at block ${p.deadline} (${p.deadline - now.number} blocks left)`;
  else when = `voting ended at block ${p.deadline}`;
  if (p.state === "Queued") {
    when += `; executable from ${new Date(Number(p.eta) * 1000).toUTCString()}` +
      (p.eta <= now.timestamp ? " (now)" : ` (in ${p.eta - now.timestamp} s)`);
  }
  const buttons = [];
  if (p.state === "Active" && app.wallet.account) {
    const cannot = p.voted ? "you have voted" : p.weight === 0n ? "you had no votes at the snapshot" : null;
    for (const [cls, support, label] of SUPPORT) {
      buttons.push(h("button", { class: `vote-${cls}`, disabled: disabled || Boolean(cannot),
        onclick: () => vote(app, p, support, label) }, label));
    }
    buttons.push(h("span", { class: "hint" }, cannot ? ` ${cannot}` : ` your votes: ${p.weight ?? "?"}`));
  }
  if (p.state === "Succeeded") buttons.push(h("button", { class: "queue", disabled, onclick: () => queue(app, p) }, "Queue"));
  if (p.state === "Queued") {
    buttons.push(h("button", { class: "execute", disabled: disabled || p.eta > now.timestamp, onclick: () => execute(app, p) }, "Execute"));
  }
  const title = p.description.split("\n")[0] || "(no description)";
  return h("article", { class: "proposal", "data-proposal": p.id.toString(), "data-state": p.state },
    h("h3", null, `${shortId(p.id)} `, h("span", { class: "state" }, p.state), ` — ${title}`),
    h("p", { class: "meta" }, `Proposed by ${shortAddress(p.proposer)} in block ${p.block}; ${when}.`),
    h("p", { class: "tally", "data-for": f, "data-against": ag, "data-abstain": ab },
      `For ${f} · Against ${ag} · Abstain ${ab} · quorum ${p.quorum} of ${plural(p.supply, "vote")}` +
      `${p.quorumNow ? " (now; fixed at the snapshot)" : " at the snapshot"}` +
      ` ${reached ? "reached" : "not reached"}${p.voted ? " · you voted" : ""}`),
    h("ol", { class: "calls" }, p.actions.map((a) => h("li", { class: "mono" }, actionText(a)))),
    buttons.length ? h("div", { class: "actions" }, buttons) : null);
}

function formView(app, data, ui, disabled) {
  const spec = PROPOSALS[ui.kind];
  const defaults = spec.defaults(data);
  for (const [name] of spec.fields) if (ui.values[`${ui.kind}.${name}`] === undefined) ui.values[`${ui.kind}.${name}`] = String(defaults[name]);
  const refresh = () => {
    const el = document.getElementById("gov-preview");
    if (el) el.replaceWith(previewView(app, ui));
  };
  const field = ([name, label, type]) => {
    const key = `${ui.kind}.${name}`;
    if (ui.kind === "addTarget" && name === "kind") {
      return h("label", null, `${label} `, h("select", { id: "gov-field-kind", onchange: (e) => { ui.values[key] = e.target.value; refresh(); } },
        TARGET_KINDS.map(([k, l]) => h("option", { value: String(k), selected: ui.values[key] === String(k) }, `${k} ${l}`))));
    }
    return h("label", null, `${label} `, h("input", { id: `gov-field-${name}`, value: ui.values[key],
      size: type === "string" || type === "bytes" ? 36 : 6, oninput: (e) => { ui.values[key] = e.target.value.trim(); refresh(); } }));
  };
  return h("section", { id: "gov-form" }, h("h2", null, "New proposal"),
    h("div", { class: "actions" }, h("select", { id: "gov-kind", onchange: (e) => { ui.kind = e.target.value; app.render(); } },
      Object.entries(PROPOSALS).map(([k, s]) => h("option", { value: k, selected: k === ui.kind }, s.label)))),
    h("div", { class: "actions" }, spec.fields.map(field)),
    h("div", { class: "actions" }, h("textarea", { id: "gov-description", rows: 2, cols: 70,
      placeholder: "description: what the proposal does and why", oninput: (e) => { ui.description = e.target.value; refresh(); } },
    ui.description)),
    previewView(app, ui),
    h("div", { class: "actions" }, h("button", { id: "gov-propose", disabled, onclick: () => propose(app, ui) }, "Propose")));
}

/** The proposal the form holds: {target, calldata, action (decoded back from the calldata)}; throws a Sentence. */
function build(app, ui) {
  const spec = PROPOSALS[ui.kind];
  const v = {};
  for (const [name, label, type] of spec.fields) {
    const text = (ui.values[`${ui.kind}.${name}`] ?? "").trim();
    if (typeof type === "number") {
      if (!/^\d+$/.test(text)) throw new Sentence(`The ${label} must be a whole number (got "${text}").`);
      if (BigInt(text) >= 1n << BigInt(type)) throw new Sentence(`The ${label} must be below 2^${type} (got ${text}).`);
    } else if (type === "bytes" && !(isHex(text) && text.length % 2 === 0)) {
      throw new Sentence(`The ${label} must be 0x followed by an even number of hex digits (got "${text}").`);
    } else if (type === "string" && !text) throw new Sentence(`The ${label} must not be empty.`);
    v[name] = text;
  }
  const { chain } = app;
  const target = chain.address[spec.contract];
  const calldata = encodeFunctionData({ abi: chain.abis[spec.contract], functionName: spec.functionName, args: spec.args(v) });
  return { target, calldata, action: decodeAction(chain, target, calldata) };
}

/** Run the call as the timelock will (eth_call from its address, at the latest block): null if it succeeds,
 *  else the sentence of its revert. A proposal whose call reverts now would most likely fail at execution. */
async function checkAsTimelock(app, target, calldata, contract) {
  const timelock = app.chain.address.Timelock;
  if (!timelock) return null;
  try {
    await app.chain.public.call({ account: timelock, to: target, data: calldata });
    return null;
  } catch (err) {
    return app.explain(err, "Executed now by the timelock, the call", contract);
  }
}

let checkSerial = 0; // the latest preview check; older answers are dropped

function previewView(app, ui) {
  let body;
  try {
    const { target, calldata, action } = build(app, ui);
    const check = h("p", { id: "gov-preview-check", class: "hint", "data-result": "pending" }, "Checking the call as the timelock…");
    const serial = ++checkSerial;
    checkAsTimelock(app, target, calldata, action.contract).then((sentence) => {
      if (serial !== checkSerial) return;
      check.dataset.result = sentence ? "reverts" : "ok";
      check.className = sentence ? "load-error" : "hint";
      check.textContent = sentence || "Executed now by the timelock, this call succeeds.";
    });
    body = [h("p", { class: "mono", id: "gov-preview-call" }, actionText(action)),
      h("p", { class: "mono hint", id: "gov-preview-calldata" }, `calldata ${calldata}`), check];
    if (!ui.description.trim()) body.push(h("p", { class: "hint" }, "Add a description before proposing."));
  } catch (err) {
    body = [h("p", { class: "load-error" }, err.sentence || err.shortMessage || String(err.message || err))];
  }
  return h("div", { id: "gov-preview", class: "preview" }, h("h3", null, "The proposal, decoded from its calldata"), body);
}

function fail(app, err) {
  app.status("error", err.sentence || String(err.shortMessage || err.message || err));
}

async function delegate(app, target) {
  try {
    if (!target) throw new Sentence("Delegate: type the address to delegate your votes to.");
    if (!isAddress(target)) throw new Sentence(`Delegate: "${target}" is not an address.`);
    const to = getAddress(target);
    const self = sameAddress(to, app.wallet.account);
    await transact(app, {
      what: "Delegate votes", contract: LICENSE, functionName: "delegate", args: [to],
      done: () => `Your licenses' votes go to ${self ? "yourself" : to} from the next block`,
    });
  } catch (err) {
    fail(app, err);
  }
}

async function propose(app, ui) {
  try {
    const { target, calldata, action } = build(app, ui);
    const description = ui.description.trim();
    if (!description) throw new Sentence("Propose: write a description first (voters read it).");
    const reverts = await checkAsTimelock(app, target, calldata, action.contract);
    if (reverts) throw new Sentence(`Propose: not sent, the proposal could not be executed: ${reverts}`);
    const id = await app.chain.read(GOVERNOR, "hashProposal", [[target], [0n], [calldata], keccak256(toBytes(description))]);
    if ((await app.chain.read(GOVERNOR, "proposalSnapshot", [id])) !== 0n) {
      throw new Sentence(`Propose: this proposal (the same actions and description) already exists as ${shortId(id)}; ` +
        "change the description to propose it again.");
    }
    await transact(app, {
      what: "Propose", contract: GOVERNOR, functionName: "propose", args: [[target], [0n], [calldata], description],
      done: (receipt) => {
        const ev = parseEventLogs({ abi: app.chain.abis[GOVERNOR], logs: receipt.logs, eventName: "ProposalCreated" })[0];
        ui.description = "";
        ui.values = {};
        return `Proposed ${ev.args.proposalId} (${action.contract}.${action.functionName}); voting opens after block ${ev.args.voteStart}`;
      },
    });
  } catch (err) {
    if (err.sentence) fail(app, err);
    else app.status("error", app.explain(err, "Propose", GOVERNOR));
  }
}

async function vote(app, p, support, label) {
  await transact(app, {
    what: `Vote ${label}`, contract: GOVERNOR, functionName: "castVote", args: [p.id, support],
    done: (receipt) => {
      const ev = parseEventLogs({ abi: app.chain.abis[GOVERNOR], logs: receipt.logs, eventName: "VoteCast" })[0];
      return `Voted ${label} on ${shortId(p.id)} with ${plural(ev.args.weight, "vote")}`;
    },
  });
}

function proposalArgs(p) {
  return [p.targets, p.values, p.calldatas, keccak256(toBytes(p.description))];
}

async function queue(app, p) {
  await transact(app, {
    what: "Queue", contract: GOVERNOR, functionName: "queue", args: proposalArgs(p),
    done: async () => {
      const eta = await app.chain.read(GOVERNOR, "proposalEta", [p.id]);
      return `Queued ${shortId(p.id)} in the timelock: executable from ${new Date(Number(eta) * 1000).toUTCString()}`;
    },
  });
}

async function execute(app, p) {
  await transact(app, {
    what: "Execute", contract: GOVERNOR, functionName: "execute", args: proposalArgs(p),
    done: () => `Executed ${shortId(p.id)}: ${p.actions.map((a) => `${a.contract || a.address}.${a.functionName || "call"}`).join(", ")}`,
  });
}
