// Drives Switchyard with OpenZeppelin's official client, unmodified
// (@openzeppelin/relayer-sdk from npm, installed in tools/npm): the calls an
// existing OZ Relayer integration makes. Prints what it read as one JSON
// line; host/tests/oz_sdk.rs checks it.
const { Configuration, RelayersApi, HealthApi } = require('@openzeppelin/relayer-sdk');

const basePath = process.env.SWITCHYARD_URL;
const config = new Configuration({ basePath, accessToken: process.env.SWITCHYARD_API_KEY });
const relayers = new RelayersApi(config);
const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

async function main() {
  const health = (await new HealthApi(config).health()).data;
  const listed = (await relayers.listRelayers()).data;
  const relayerId = listed.data[0].id;
  const sent = (await relayers.sendTransaction(relayerId, {
    to: process.env.RECIPIENT,
    value: 1,
    data: '0x',
    gas_limit: 21000,
    speed: 'fast',
  })).data;
  let tx = sent.data;
  const deadline = Date.now() + 60000;
  while (tx.status !== 'confirmed' && Date.now() < deadline) {
    await sleep(200);
    tx = (await relayers.getTransactionById(relayerId, tx.id)).data.data;
  }
  const page = (await relayers.listTransactions(relayerId, 1, 10)).data;
  const byNonce = (await relayers.getTransactionByNonce(relayerId, tx.nonce)).data.data;
  const status = (await relayers.getRelayerStatus(relayerId)).data.data;
  const balance = (await relayers.getRelayerBalance(relayerId)).data.data;
  const signed = (await relayers.sign(relayerId, { message: 'hello from the OZ SDK' })).data.data;
  console.log(JSON.stringify({ health, relayer: listed.data[0], sent: sent.data, tx, page, byNonce, status, balance, signed }));
}

main().catch((error) => {
  console.error(error.response ? `${error.response.status} ${JSON.stringify(error.response.data)}` : error);
  process.exit(1);
});
