// Network tab: epochs, active licenses, targets with their latest outcomes, flagged violations with links to
// their evidence bundles on this node, and a chart of both over the last epochs.
import { HISTORY_EPOCHS } from "./chain.js";
import { chart } from "./chart.js";
import { h, table } from "./dom.js";

const OUTCOMES = { 1: "OK", 2: "FAULT", 3: "UNREACHABLE", 4: "INCONCLUSIVE" };
const KINDS = { 1: "EVM_RPC", 2: "COMETBFT", 3: "ZGS_STORAGE", 4: "DA_SIGNER", 5: "MODEL" };
const MAX_TARGETS = 500;
const SHOWN_VIOLATIONS = 30;

export async function load(app) {
  const { chain } = app;
  const win = await chain.window();
  const epochs = [];
  for (let e = win.first; e <= win.epoch; e++) epochs.push(e);
  const [head, length, start, reveal, targetCount, settled, flagged, active] = await Promise.all([
    chain.public.getBlockNumber(), chain.read("AuditProtocol", "epochLength"),
    chain.read("AuditProtocol", "epochStartBlock", [win.epoch]), chain.read("AuditProtocol", "revealWindow", [win.epoch]),
    chain.read("TargetRegistry", "targetCount"),
    chain.events("AuditProtocol", "TargetSettled", { fromBlock: win.fromBlock }),
    chain.events("AuditProtocol", "ViolationFlagged", { fromBlock: win.fromBlock }),
    Promise.all(epochs.map((e) => chain.read("RewardVault", "activeCount", [e]))),
  ]);
  const n = Number(targetCount < BigInt(MAX_TARGETS) ? targetCount : BigInt(MAX_TARGETS));
  const targets = await Promise.all(Array.from({ length: n }, (_, i) => chain.read("TargetRegistry", "getTarget", [BigInt(i)])));
  const latest = new Map();
  for (const ev of settled) {
    const prev = latest.get(ev.args.targetId);
    if (!prev || ev.args.epoch >= prev.epoch) latest.set(ev.args.targetId, ev.args);
  }
  // A target whose committee all voted OK is not settled (issue 16): its outcome is a view of its committee's
  // votes. The latest epoch whose reveals are over: the previous one once its window closed, else the one before.
  const closed = head >= start + reveal[1] - reveal[0] ? win.epoch - 1n : win.epoch - 2n;
  if (closed >= 0n) {
    const read = async (i) => {
      const id = BigInt(i);
      const prev = latest.get(id);
      if (prev && prev.epoch >= closed) return;
      const [outcome, t] = await Promise.all([chain.read("AuditProtocol", "outcomeOf", [closed, id]),
        chain.read("AuditProtocol", "tally", [closed, id])]);
      if (outcome !== 0 && t[3] > 0) latest.set(id, { epoch: closed, outcome, ok: t[0], fault: t[1], unreachable: t[2] });
    };
    await Promise.all(Array.from({ length: n }, (_, i) => read(i).catch(() => undefined)));
  }
  const perEpoch = new Map();
  for (const ev of flagged) perEpoch.set(ev.args.epoch, (perEpoch.get(ev.args.epoch) || 0) + 1);
  return {
    head, epoch: win.epoch, length, start, reveal, targetCount,
    targets: targets.map((t, i) => ({ id: BigInt(i), ...t, latest: latest.get(BigInt(i)) || null })),
    violations: flagged.slice(-SHOWN_VIOLATIONS).reverse().map((ev) => ev.args),
    points: epochs.map((e, i) => ({ epoch: e, flagged: perEpoch.get(e) || 0, active: Number(active[i]) })),
  };
}

export function view(app, data) {
  const now = data.points[data.points.length - 1];
  const prev = data.points[data.points.length - 2];
  const evidence = (root) => `/evidence/${root}`;
  return [
    h("section", null, h("h2", null, "Network"),
      h("p", { id: "epoch" }, `Chain ${app.cfg.chainId}, block ${data.head}. Epoch ${data.epoch} (blocks ${data.start}–` +
        `${data.start + data.length - 1n}, ${data.length} blocks an epoch` +
        (data.epoch > 0n ? `; reveals of epoch ${data.epoch - 1n} until block ${data.start + data.reveal[1] - data.reveal[0] - 1n}` : "") +
        `). Active licenses: ${now.active} now, ${prev ? prev.active : 0} last epoch. ` +
        `${data.targetCount} targets.`),
      chart(data.points)),
    h("section", null, h("h2", null, "Targets"),
      data.targets.length ? table(["id", "kind", "endpoint", "enabled", "latest outcome", "votes ok/fault/unreachable"],
        data.targets.map((t) => h("tr", { "data-target": String(t.id) },
          h("td", null, String(t.id)), h("td", null, KINDS[t.kind] || `kind ${t.kind}`), h("td", { class: "mono" }, t.endpoint),
          h("td", null, t.enabled ? "yes" : "no"),
          h("td", { class: `outcome outcome-${t.latest ? OUTCOMES[t.latest.outcome] : "none"}` },
            t.latest ? `${OUTCOMES[t.latest.outcome]} (epoch ${t.latest.epoch})` : `no outcome in the last ${HISTORY_EPOCHS} epochs`),
          h("td", { class: "num" }, t.latest ? `${t.latest.ok}/${t.latest.fault}/${t.latest.unreachable}` : "-"))),
        { id: "targets" }) : h("p", null, "No target is registered.")),
    h("section", null, h("h2", null, "Flagged violations"),
      data.violations.length ? table(["epoch", "target", "outcome", "evidence"],
        data.violations.map((v) => h("tr", { class: "violation" },
          h("td", null, String(v.epoch)), h("td", null, String(v.targetId)), h("td", null, OUTCOMES[v.outcome] || String(v.outcome)),
          h("td", null, h("a", { href: evidence(v.evidenceRoot), target: "_blank", rel: "noopener", class: "mono" }, v.evidenceRoot)))),
        { id: "violations" })
        : h("p", { class: "hint" }, `No violation flagged in the last ${HISTORY_EPOCHS} epochs.`),
      h("p", { class: "hint" }, "Each root is one agreeing auditor's evidence bundle; the link asks this node, which holds " +
        "the bundles of its own audits (another auditor's node serves its own). alignment-node verify-evidence ROOT " +
        "--from URL re-checks a bundle.")),
  ];
}
