"""The one Python path to the chain: artifacts, deployment, bindings."""
