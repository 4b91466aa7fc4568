"""The ticket wire format: safetensors files, digests, the manifest, ticket ids."""
