// Signing in: Sign-In with Ethereum. The API writes the EIP-4361 message for this address (the app builds
// nothing), the wallet signs it, the API checks it and answers a token.
import * as api from "./api.js";
import * as wallet from "./wallet.js";

export async function signIn() {
  const address = wallet.address();
  const { message } = await api.post("/v1/auth/nonce", { address }, { auth: false });
  const signature = await wallet.signMessage(message);
  const answer = await api.post("/v1/auth/login", { message, signature }, { auth: false });
  api.keepSession(answer);
  return answer;
}

export function signedIn() {
  const current = api.session();
  return current && wallet.address() && current.address === wallet.address() ? current : null;
}

export function signOut() {
  api.endSession();
  wallet.lock();
}
