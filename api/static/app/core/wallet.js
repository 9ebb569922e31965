// The borrower's wallet. Either a key made here, in the browser, kept only on this phone as an encrypted keystore
// (Web3 Secret Storage, the format eth-account and the CLI read and write, so one keystore moves between them),
// unlocked with the borrower's passcode into memory for as long as the page is open; or the phone's own wallet,
// injected by a wallet app's browser (EIP-1193). Nothing here sends the key or the passcode anywhere: the API
// sees addresses and signatures only. The cryptography is ethers' (npm), none written here.
import { Wallet, getAddress } from "../vendor/ethers-6.17.0.min.js";

const KEYSTORE = "loanledger.app.keystore";
const KIND = "loanledger.app.wallet-kind"; // "keystore" | "injected"

let unlocked = null;   // an ethers Wallet while unlocked; null when locked
let injected = null;   // the injected wallet's address once the borrower allowed it

export function kind() {
  return localStorage.getItem(KIND);
}

export function keystore() {
  return localStorage.getItem(KEYSTORE);
}

export function storedAddress() {
  if (kind() === "injected") return injected;
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

export function lock() {
  unlocked = null;
}

// A new key, made here; kept encrypted under the passcode. `progress(fraction)` while the key is stretched.
export async function create(passcode, progress = () => {}) {
  const fresh = Wallet.createRandom();
  const plain = new Wallet(fresh.privateKey); // no mnemonic fields: the keystore stays the plain v3 format
  const json = await plain.encrypt(passcode, progress);
  localStorage.setItem(KEYSTORE, json);
  localStorage.setItem(KIND, "keystore");
  unlocked = plain;
  return plain.address;
}

// A keystore brought from a backup or the CLI: checked by decrypting it with its passcode before it is kept.
export async function restore(json, passcode, progress = () => {}) {
  const wallet = await Wallet.fromEncryptedJson(json, passcode, progress);
  localStorage.setItem(KEYSTORE, typeof json === "string" ? json : JSON.stringify(json));
  localStorage.setItem(KIND, "keystore");
  unlocked = wallet;
  return wallet.address;
}

export async function unlock(passcode, progress = () => {}) {
  const saved = keystore();
  if (!saved) throw new Error("no_wallet");
  unlocked = await Wallet.fromEncryptedJson(saved, passcode, progress);
  return unlocked.address;
}

export function hasInjected() {
  return typeof window.ethereum?.request === "function";
}

export async function connectInjected() {
  const [account] = await window.ethereum.request({ method: "eth_requestAccounts" });
  injected = getAddress(account);
  localStorage.setItem(KIND, "injected");
  return injected;
}

export function forget() {
  unlocked = injected = null;
  localStorage.removeItem(KEYSTORE);
  localStorage.removeItem(KIND);
}

// EIP-191 personal_sign (the Sign-In with Ethereum message).
export async function signMessage(message) {
  if (unlocked) return unlocked.signMessage(message);
  if (injected) return window.ethereum.request({ method: "personal_sign", params: [message, injected] });
  throw new Error("wallet_locked");
}

// EIP-712, the typed data as the API gives it: { domain, types (with EIP712Domain), primaryType, message }.
export async function signTypedData(typed) {
  if (unlocked) {
    const { EIP712Domain, ...types } = typed.types;
    return unlocked.signTypedData(typed.domain, types, typed.message);
  }
  if (injected) {
    return window.ethereum.request({ method: "eth_signTypedData_v4", params: [injected, JSON.stringify(typed)] });
  }
  throw new Error("wallet_locked");
}

// The backup file: the keystore as it is (still encrypted under the passcode).
export function backupFile() {
  const address = storedAddress();
  const name = `loanledger-wallet-${(address || "").slice(2, 10).toLowerCase()}.json`;
  return { name, blob: new Blob([keystore() || ""], { type: "application/json" }) };
}
