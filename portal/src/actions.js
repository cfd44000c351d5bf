// One transaction from a button: check the wallet and chain, simulate (a revert is decoded before anything is
// signed), let the wallet sign and send, wait for the receipt, say what happened in one sentence.
import { explain, Sentence } from "./errors.js";

/** `selection`: Set(s) of selected license ids, emptied when the transaction succeeds. */
export async function transact(app, { what, contract, functionName, args = [], value, done, selection }) {
  const { chain, wallet } = app;
  if (app.busy) return null;
  app.busy = true;
  app.render(); // disables the buttons
  const context = { abis: chain.abis, contract, rpcUrls: app.cfg.rpcUrls };
  let hash = null;
  try {
    if (!wallet.account) throw new Sentence(`${what}: connect a wallet first.`);
    if (!wallet.onRightChain) {
      const sentence = await wallet.switchChain();
      if (sentence) throw new Sentence(sentence);
    }
    app.status("info", `${what}: checking…`);
    const { request } = await chain.public.simulateContract({
      address: chain.address[contract], abi: chain.abis[contract], functionName, args, value,
      account: wallet.account,
    });
    // A gas limit with headroom: the estimate is made against the latest block, and the first transaction of
    // a new epoch also finalizes the ended epoch's budget (RewardVault._roll), which the estimate did not pay.
    const estimate = await chain.public.estimateContractGas({
      address: chain.address[contract], abi: chain.abis[contract], functionName, args, value,
      account: wallet.account,
    });
    request.gas = (estimate * 3n) / 2n + 100_000n;
    app.status("info", `${what}: confirm in your wallet…`);
    hash = await chain.wallet.writeContract(request);
    app.status("info", `${what}: sent ${hash}, waiting for it to be mined…`, hash);
    const receipt = await chain.public.waitForTransactionReceipt({ hash, pollingInterval: app.cfg.pollIntervalMs });
    app.sent.unshift({ what, hash, block: receipt.blockNumber, ok: receipt.status === "success" });
    if (receipt.status !== "success") {
      throw new Sentence(`${what} failed: the transaction ${hash} was mined in block ${receipt.blockNumber} but reverted.`);
    }
    const sentence = done ? await done(receipt) : `${what} done`;
    app.status("success", `${sentence} (tx ${hash}).`, hash);
    for (const set of [selection].flat()) set?.clear();
    return receipt;
  } catch (err) {
    console.error(what, err);
    app.status("error", explain(err, what, context), hash);
    return null;
  } finally {
    app.busy = false;
    await app.refresh();
  }
}
