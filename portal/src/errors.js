// Every failure becomes one sentence: a decoded custom error, a rejected signature, a wrong chain, an RPC
// endpoint that does not answer, or (last resort) the library's own short message.
import { BaseError, decodeErrorResult } from "viem";

// What a custom error means for the person who pressed the button.
const HINTS = {
  InsufficientPayment: "the payment does not cover the price",
  CostAboveMax: "the price rose above the quote (another purchase moved the tier); try again",
  WalletCapExceeded: "this wallet has reached its purchase cap for this phase",
  SoldOut: "the sale has not that many licenses left",
  SaleNotOpen: "the sale is not open yet",
  SaleEnded: "the sale has ended",
  NotAllowlisted: "this wallet is not on the allowlist (the allowlist phase needs a proof: use the CLI)",
  UnknownPromoCode: "that promo code does not exist",
  EnforcedPause: "the sale is paused",
  ZeroQuantity: "buy at least one license",
  NotRegistered: "that address is not a registered operator",
  NotLicenseOwner: "this wallet does not own that license",
  NotFree: "the license is already delegated or pending: undelegate it first",
  NotPending: "the license is no longer pending (its owner may have taken it back)",
  NotYourLicense: "the license is not delegated to this operator",
  AlreadyFree: "the license is not delegated",
  OperatorFull: "the operator has reached its license cap",
  NothingToClaim: "there is nothing to claim yet",
  Suspended: "the license is suspended",
  Soulbound: "licenses cannot be transferred yet",
};

function walk(err, predicate) {
  if (err instanceof BaseError) return err.walk(predicate) || null;
  for (let e = err, depth = 0; e && depth < 10; e = e.cause, depth++) if (predicate(e)) return e;
  return null;
}

/** Decode revert data against the ABIs, the called contract's first: {contract, name, args, inputs} or null. */
export function decodeRevert(data, abis, preferred) {
  if (typeof data !== "string" || !data.startsWith("0x") || data.length < 10) return null;
  const names = [preferred, ...Object.keys(abis).filter((n) => n !== preferred)].filter((n) => n && abis[n]);
  for (const contract of names) {
    try {
      const { errorName, args, abiItem } = decodeErrorResult({ abi: abis[contract], data });
      return { contract, name: errorName, args: args || [], inputs: abiItem?.inputs || [] };
    } catch {
      // not an error of this contract
    }
  }
  try {
    const { errorName, args } = decodeErrorResult({ abi: [], data }); // Error(string) and Panic(uint256)
    return { contract: null, name: errorName, args: args || [], inputs: [] };
  } catch {
    return null;
  }
}

function describeDecoded(d) {
  if (d.name === "Error") return `reverted: "${d.args[0]}"`;
  if (d.name === "Panic") return `panicked (code ${d.args[0]})`;
  const args = d.args.map((a, i) => `${d.inputs[i]?.name || "arg" + i} ${String(a)}`).join(", ");
  const hint = HINTS[d.name] ? `: ${HINTS[d.name]}` : "";
  return `${d.contract ? d.contract + ": " : ""}${d.name}${args ? " (" + args + ")" : ""}${hint}`;
}

const isRejection = (e) => e?.code === 4001 || e?.name === "UserRejectedRequestError";
const isNetwork = (e) => ["HttpRequestError", "TimeoutError", "WebSocketRequestError"].includes(e?.name) ||
  e instanceof TypeError && /fetch/i.test(e.message);

/** One sentence for an error of `what` ("Buy", "Delegate", "Loading the owner view"...). */
export function explain(err, what, { abis = {}, contract = null, rpcUrls = [] } = {}) {
  if (walk(err, isRejection)) return "You rejected the signature in your wallet; nothing was sent.";
  const mismatch = walk(err, (e) => e?.name === "ChainMismatchError");
  if (mismatch) return `Wrong chain: ${mismatch.shortMessage || mismatch.message}`;
  const reverted = walk(err, (e) => e?.name === "ContractFunctionRevertedError");
  const rawData = reverted?.raw || walk(err, (e) => typeof e?.data === "string" && e.data.startsWith("0x"))?.data ||
    walk(err, (e) => typeof e?.data?.data === "string")?.data?.data;
  const decoded = decodeRevert(rawData, abis, contract);
  if (decoded) return `${what} failed: ${describeDecoded(decoded)}.`;
  if (reverted?.data?.errorName) {
    return `${what} failed: ${describeDecoded({ contract, name: reverted.data.errorName, args: reverted.data.args || [],
      inputs: reverted.data.abiItem?.inputs || [] })}.`;
  }
  if (reverted?.reason) return `${what} failed: the contract reverted: "${reverted.reason}".`;
  if (walk(err, isNetwork)) {
    return `${what} failed: the chain's RPC endpoint does not answer (${rpcUrls.join(", ") || "no URL"}); it may be down.`;
  }
  if (err?.sentence) return err.sentence;
  const text = err?.shortMessage || err?.message || String(err);
  return `${what} failed: ${text.split("\n")[0]}`;
}

/** An error that already is the sentence to show. */
export class Sentence extends Error {
  constructor(sentence) {
    super(sentence);
    this.sentence = sentence;
  }
}
