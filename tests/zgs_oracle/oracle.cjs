// Test oracle for tests/test_zgs_merkle.py: 0G's own TypeScript SDK (@0glabs/0g-ts-sdk) computes each file's
// data root, submission nodes and segment proofs, so the Python implementation is compared with 0G's, not with
// itself.
//
//     node oracle.cjs [--at I,J,K] FILE [[--at ...] FILE ...]
//
// Prints one JSON line per file, in order:
//     {"file", "size", "root", "segments", "nodes": [[height, root], ...],
//      "proofs": [{"index", "lemma": [hex, ...], "path": [bool, ...]}, ...]}
// with proofs for every segment, or only for the indexes given by the --at just before the file.
// Exits 1 with a message on standard error when the SDK reports an error.
'use strict';

const { ZgFile } = require('@0glabs/0g-ts-sdk');

function parseArgs(argv) {
  const files = [];
  let at = null;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--at') {
      at = argv[++i].split(',').filter((s) => s !== '').map((s) => Number.parseInt(s, 10));
    } else {
      files.push({ path: argv[i], at });
      at = null;
    }
  }
  return files;
}

async function describe(path, at) {
  const file = await ZgFile.fromFilePath(path);
  try {
    const [tree, err] = await file.merkleTree();
    if (err !== null) throw new Error(`merkleTree: ${err}`);
    const [submission, serr] = await file.createSubmission('0x');
    if (serr !== null) throw new Error(`createSubmission: ${serr}`);
    const segments = tree.leaves.length;
    const indexes = at === null ? [...Array(segments).keys()] : at;
    const proofs = indexes.map((index) => {
      const p = tree.proofAt(index);
      return { index, lemma: p.lemma, path: p.path };
    });
    return {
      file: path,
      size: file.size(),
      root: tree.rootHash(),
      segments,
      nodes: submission.nodes.map((n) => [n.height, n.root]),
      proofs,
    };
  } finally {
    await file.close();
  }
}

async function main() {
  for (const { path, at } of parseArgs(process.argv.slice(2))) {
    process.stdout.write(JSON.stringify(await describe(path, at)) + '\n');
  }
}

main().catch((err) => {
  process.stderr.write(`oracle: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
