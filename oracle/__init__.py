"""The oracle: brings what the chain cannot see (credit scores, payment confirmations) on-chain."""
