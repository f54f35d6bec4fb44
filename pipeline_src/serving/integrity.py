"""The model bundle's digest: recorded at registration, checked before anything unpickles it.

`model.joblib` is a pickle, and loading a pickle runs code: whoever can write the models' storage
must not be able to run code where a model is loaded (prod's serving container, the pipeline
runner's gate and evaluation). So the register step records `bundle_digest` as the version's
`MODEL_SHA256` serving variable, and every loader calls `verify_bundle` first (docs/serving.md).

This module imports nothing heavy, so the server, the components (from the pipeline image) and
the local registry use it as it is.
"""

from __future__ import annotations


def bundle_digest(directory: str) -> str:
    """sha256 of what loading a model reads: `model.joblib` (a pickle: loading it runs code) and
    `model.json`, each with its name and size, in that order. Recorded at registration (the
    version's `MODEL_SHA256` serving variable), checked by `verify_bundle` before any unpickling."""
    import hashlib
    import os

    digest = hashlib.sha256()
    for name in ("model.joblib", "model.json"):
        path = os.path.join(directory, name)
        digest.update(f"{name}\0{os.path.getsize(path)}\0".encode())
        with open(path, "rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


def verify_bundle(directory: str, expected: str) -> None:
    """Refuse (ValueError) a bundle whose digest is not the one recorded at its registration, or
    that has none recorded: whoever can write the models' storage must not run code here."""
    if not expected:
        raise ValueError(
            f"model bundle {directory}: no MODEL_SHA256 was recorded at its registration; "
            "refusing to unpickle an unverified bundle (register it again)"
        )
    actual = bundle_digest(directory)
    if actual != expected:
        raise ValueError(
            f"model bundle {directory}: sha256 {actual} is not {expected}, recorded at its "
            "registration; refusing to unpickle it"
        )


def vertex_bundle_digest(model) -> str:
    """The MODEL_SHA256 a Vertex AI model version was registered with (its serving container's
    environment, immutable once uploaded; Vertex passes it to the serving container), or ""."""
    spec = model.gca_resource.container_spec
    return next((v.value for v in spec.env if v.name == "MODEL_SHA256"), "")
