// Decisions signed by the person who makes them. The server prepares what to sign (POST /v1/operator/requests:
// EIP-712 ForwardRequest typed data, one per call, and what the decision does in words); the page shows that
// summary before anything is signed; the wallet signs each request (eth_signTypedData_v4) as it is; the decision's
// route checks the signatures are the signed-in person's and relays them. Nothing here builds or hashes a request.

// What the server prepares for `action` with `params` (the decision route's path parameters and body).
export function prepare(api, action, params) {
  return api("/v1/operator/requests", { method: "POST", body: { action, params } });
}

// Each prepared request signed by `signer` in `wallet` (an EIP-1193 provider), in order: the bodies a route takes.
export async function signAll(wallet, signer, prepared) {
  const signed = [];
  for (const item of prepared.requests) {
    if (item.typed_data.message.from.toLowerCase() !== signer.toLowerCase()) {
      throw new Error(`the API prepared a request from ${item.typed_data.message.from}, not from ${signer}`);
    }
    const signature = await wallet.request({
      method: "eth_signTypedData_v4", params: [signer, JSON.stringify(item.typed_data)] });
    signed.push({ request: item.typed_data.message, signature });
  }
  return signed;
}

// The body of a decision route: `extra` (e.g. a reason) with the one signed request, or `requests: [...]`.
export function decisionBody(signed, { several = false, extra = {} } = {}) {
  if (several) return { ...extra, requests: signed };
  if (signed.length !== 1) throw new Error(`expected one request to sign, the API prepared ${signed.length}`);
  return { ...extra, ...signed[0] };
}
