// Compiles a contract of this folder with solc (solcjs, from tools/npm),
// resolving @openzeppelin/contracts from tools/npm; prints its ABI and
// bytecode as JSON. Usage: node compile.js <File.sol> <ContractName>
"use strict";
const fs = require("fs");
const path = require("path");
const modules = path.resolve(__dirname, "../../../tools/npm/node_modules");
const solc = require(path.join(modules, "solc"));

const [file, name] = process.argv.slice(2);
const input = {
  language: "Solidity",
  sources: { [file]: { content: fs.readFileSync(path.join(__dirname, file), "utf8") } },
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: "cancun",
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } },
  },
};
const imports = (wanted) => {
  try {
    return { contents: fs.readFileSync(path.join(modules, wanted), "utf8") };
  } catch (error) {
    return { error: `${wanted}: ${error.message}` };
  }
};
const output = JSON.parse(solc.compile(JSON.stringify(input), { import: imports }));
const errors = (output.errors || []).filter((e) => e.severity === "error");
if (errors.length) {
  console.error(errors.map((e) => e.formattedMessage).join("\n"));
  process.exit(1);
}
const contract = output.contracts[file][name];
process.stdout.write(JSON.stringify({ abi: contract.abi, bytecode: "0x" + contract.evm.bytecode.object }));
