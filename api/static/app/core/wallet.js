// The borrower's wallet. Either a key made here, in the browser, kept only on this phone as an encrypted keystore
// (Web3 Secret Storage, the format eth-account and the CLI read and write, so one keystore moves between them),
// unlocked with the borrower's passcode into memory for as long as the page is open; or the phone's own wallet,
// injected by a wallet app's browser (EIP-1193). Nothing here sends the key or the passcode anywhere: the API
// sees addresses and signatures only. The cryptography is ethers' (npm), none written here.
import { Wallet, getAddress, isKeystoreJson } from "../vendor/ethers-6.17.0.min.js";

const KEYSTORE = "loanledger.app.keystore";
const KIND = "loanledger.app.wallet-kind"; // "keystore" | "injected"
const INJECTED = "loanledger.app.injected-address"; // the phone wallet's address last allowed, shown before it connects
const BACKED_UP = "loanledger.app.backed-up"; // when the borrower last confirmed they saved the backup (ms)

let unlocked = null;   // an ethers Wallet while unlocked; null when locked
let injected = null;   // the injected wallet's address once the borrower allowed it

export function kind() {
  return localStorage.getItem(KIND);
}

export function keystore() {
  return localStorage.getItem(KEYSTORE);
}

export function storedAddress() {
  if (kind() === "injected") return injected ?? localStorage.getItem(INJECTED);
  const saved = keystore();
  if (!saved) return null;
  try {
    return getAddress(JSON.parse(saved).address);
  } catch {
    return null;
  }
}

export function address() {
  return unlocked?.address ?? injected ?? null;
}

export function isUnlocked() {
  return address() !== null;
}

// Signing out: the key leaves memory (the phone's wallet is asked again next time).
export function lock() {
  unlocked = injected = null;
}

// A new key, made here; kept encrypted under the passcode. `progress(fraction)` while the key is stretched.
export async function create(passcode, progress = () => {}) {
  const fresh = Wallet.createRandom();
  const plain = new Wallet(fresh.privateKey); // no mnemonic fields: the keystore stays the plain v3 format
  const json = await plain.encrypt(passcode, progress);
  keep(json);
  unlocked = plain;
  return plain.address;
}

function keep(json) {
  injected = null; // this phone's own keystore signs from now on
  localStorage.setItem(KEYSTORE, json);
  localStorage.setItem(KIND, "keystore");
  localStorage.removeItem(INJECTED);
  localStorage.removeItem(BACKED_UP);
}

// ethers' refusal of a keystore's MAC is the one failure that means "wrong passcode"; anything else thrown while
// decrypting means the file is not a keystore it can read.
function decryptFailure(error) {
  return new Error(error?.shortMessage === "incorrect password" ? "wrong_passcode" : "not_keystore");
}

// A keystore brought from a backup or the CLI: checked by decrypting it with its passcode before it is kept.
// Errors: "not_keystore" (not a Web3 Secret Storage v3 file), "wrong_passcode".
export async function restore(json, passcode, progress = () => {}) {
  const text = (typeof json === "string" ? json : JSON.stringify(json)).trim();
  if (!isKeystoreJson(text)) throw new Error("not_keystore");
  let wallet;
  try {
    wallet = await Wallet.fromEncryptedJson(text, passcode, progress);
  } catch (error) {
    throw decryptFailure(error);
  }
  keep(text);
  markBackedUp(); // it came from a backup: that backup exists
  unlocked = wallet;
  return wallet.address;
}

export async function unlock(passcode, progress = () => {}) {
  const saved = keystore();
  if (!saved) throw new Error("no_wallet");
  try {
    unlocked = await Wallet.fromEncryptedJson(saved, passcode, progress);
  } catch (error) {
    throw decryptFailure(error);
  }
  return unlocked.address;
}

export function hasInjected() {
  return typeof window.ethereum?.request === "function";
}

// The phone's wallet app asks the borrower to allow this site; a refusal (EIP-1193 code 4001) is "wallet_refused".
// Its key stays in the wallet app; this phone keeps only its address, to show it before it connects again.
export async function connectInjected() {
  let account;
  try {
    [account] = await window.ethereum.request({ method: "eth_requestAccounts" });
  } catch (error) {
    throw new Error(error?.code === 4001 ? "wallet_refused" : "wallet_app_failed");
  }
  if (!account) throw new Error("wallet_refused");
  injected = getAddress(account);
  unlocked = null;
  localStorage.setItem(KIND, "injected");
  localStorage.setItem(INJECTED, injected);
  return injected;
}

// This phone forgets the wallet: only a backup (or the phone's wallet app) can bring it back.
export function forget() {
  unlocked = injected = null;
  for (const key of [KEYSTORE, KIND, INJECTED, BACKED_UP]) localStorage.removeItem(key);
}

export function markBackedUp() {
  localStorage.setItem(BACKED_UP, String(Date.now()));
}

// When the borrower last confirmed saving the backup, as unix seconds; null if never.
export function backedUpAt() {
  const at = Number(localStorage.getItem(BACKED_UP));
  return at ? Math.floor(at / 1000) : null;
}

async function injectedRequest(method, params) {
  try {
    return await window.ethereum.request({ method, params });
  } catch (error) {
    throw new Error(error?.code === 4001 ? "wallet_refused" : "wallet_app_failed");
  }
}

// EIP-191 personal_sign (the Sign-In with Ethereum message).
export async function signMessage(message) {
  if (unlocked) return unlocked.signMessage(message);
  if (injected) return injectedRequest("personal_sign", [message, injected]);
  throw new Error("wallet_locked");
}

// EIP-712, the typed data as the API gives it: { domain, types (with EIP712Domain), primaryType, message }.
export async function signTypedData(typed) {
  if (unlocked) {
    const { EIP712Domain, ...types } = typed.types;
    return unlocked.signTypedData(typed.domain, types, typed.message);
  }
  if (injected) {
    return injectedRequest("eth_signTypedData_v4", [injected, JSON.stringify(typed)]);
  }
  throw new Error("wallet_locked");
}

// The backup file: the keystore as it is (still encrypted under the passcode).
export function backupFile() {
  const address = storedAddress();
  const name = `loanledger-wallet-${(address || "").slice(2, 10).toLowerCase()}.json`;
  return { name, blob: new Blob([keystore() || ""], { type: "application/json" }) };
}
