"""Compact forms over HTTP: packed masks and kept inits served with their own ETags,
accepted on upload with the same id, refused with nothing stored when corrupt; the
footprint and the max_params filter."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from db.models.tickets import Ticket
from nirvana.lottery.tickets.compact import decode_init, decode_mask, encode_init, encode_mask, masked_init
from nirvana.lottery.tickets.digests import tensors_digest
from nirvana.lottery.tickets.files import dump_tensors, load_tensors, read_metadata
from tests.api.conftest import stored_counts
from tests.support.tickets import make_ticket


def _upload(client: TestClient, auth: dict[str, str], manifest: bytes, mask: bytes, init: bytes | None = None):  # type: ignore[no-untyped-def]
    files = {"manifest": ("ticket.json", manifest, "application/json"), "mask": ("mask.safetensors", mask, "application/octet-stream")}
    if init is not None:
        files["init"] = ("init.safetensors", init, "application/octet-stream")
    return client.post("/api/v1/tickets", files=files, headers=auth)


def test_packed_and_kept_downloads_rebuild_the_dense_tensors(client: TestClient, auth: dict[str, str]) -> None:
    files = make_ticket(density=0.1)
    ticket = _upload(client, auth, files.manifest_bytes(), files.mask_bytes()).json()
    assert ticket["links"]["mask_packed"].endswith("/mask?format=packed")
    packed = client.get(ticket["links"]["mask_packed"])
    assert packed.status_code == 200
    sha = hashlib.sha256(packed.content).hexdigest()
    assert packed.headers["etag"] == f'"{sha}"' != client.get(ticket["links"]["mask"]).headers["etag"]
    assert 'filename="mask.packed.safetensors"' in packed.headers["content-disposition"]
    mask = decode_mask(packed.content)
    assert tensors_digest(mask) == ticket["digests"]["mask"] == tensors_digest(files.mask)

    kept = client.get(ticket["links"]["init_kept"])
    assert kept.status_code == 200 and len(kept.content) < len(files.init_bytes()) / 3
    init = decode_init(kept.content, mask)
    assert tensors_digest(init) == ticket["digests"]["init_kept"] == tensors_digest(masked_init(files.init, files.mask))
    assert client.get(ticket["links"]["init_kept"], headers={"If-None-Match": kept.headers["etag"]}).status_code == 304
    bad = client.get(f"/api/v1/tickets/{ticket['id']}/mask?format=kept")
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")


def test_uploads_in_either_form_give_the_same_id(client: TestClient, auth: dict[str, str], db_session: Session) -> None:
    files = make_ticket(density=0.2, mask_seed=5)
    packed, kept = encode_mask(files.mask), encode_init(files.init, files.mask)
    first = _upload(client, auth, files.manifest_bytes(), packed, kept)
    assert first.status_code == 201, first.text
    for mask, init in ((files.mask_bytes(), None), (files.mask_bytes(), files.init_bytes()), (packed, None), (packed, files.init_bytes())):
        again = _upload(client, auth, files.manifest_bytes(), mask, init)
        assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    # the stored dense init is the seed's: the kept form lost nothing that matters
    dense = load_tensors(client.get(f"/api/v1/tickets/{first.json()['id']}/init").content)
    assert tensors_digest(dense) == tensors_digest(files.init)


def test_a_kept_init_without_a_seed_stores_pruned_weights_as_zero(client: TestClient, auth: dict[str, str]) -> None:
    files = make_ticket(density=0.3, mask_seed=2)
    manifest = {**files.manifest, "init": {"scheme": "kaiming_normal", "rewind_step": 3}}
    zeroed = masked_init(files.init, files.mask)
    a = _upload(client, auth, json.dumps(manifest).encode(), encode_mask(files.mask), encode_init(files.init, files.mask))
    b = _upload(client, auth, json.dumps(manifest).encode(), files.mask_bytes(), dump_tensors(zeroed))
    assert a.status_code == 201 and b.status_code == 200 and a.json()["id"] == b.json()["id"]
    assert a.json()["digests"]["init"] == a.json()["digests"]["init_kept"] == tensors_digest(zeroed)


def test_corrupted_packed_files_are_4xx_and_store_nothing(client: TestClient, auth: dict[str, str], db_session: Session, blob_dir: Path) -> None:
    files = make_ticket(density=0.1)
    packed = encode_mask(files.mask)
    layers = json.loads(read_metadata(packed)["layers"])
    layers[0]["count"] += 5  # more codes than the stream holds
    corrupt = [
        packed[:-4],
        dump_tensors(load_tensors(packed), {**read_metadata(packed), "layers": json.dumps(layers)}),
        dump_tensors(load_tensors(packed), {**read_metadata(packed), "layers": "[{\"name\": \"fc1.weight\", \"shape\": [99999999, 99999]}]"}),
        encode_mask({**files.mask, "fc1.weight": torch.ones(3, 3, dtype=torch.bool)}),
    ]
    for data in corrupt:
        response = _upload(client, auth, files.manifest_bytes(), data)
        assert 400 <= response.status_code < 500, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "invalid_safetensors"
    wrong_values = {n: t + 1 for n, t in files.init.items()}
    response = _upload(client, auth, files.manifest_bytes(), packed, encode_init(wrong_values, files.mask))
    assert response.status_code == 422 and response.json()["code"] == "init_mismatch"
    assert stored_counts(db_session, blob_dir) == (0, 0, 0, 0)


def test_footprint_and_max_params(client: TestClient, auth: dict[str, str]) -> None:
    small = _upload(client, auth, make_ticket(density=0.05, mask_seed=1).manifest_bytes(), make_ticket(density=0.05, mask_seed=1).mask_bytes()).json()
    big = _upload(client, auth, make_ticket(density=0.9, mask_seed=1).manifest_bytes(), make_ticket(density=0.9, mask_seed=1).mask_bytes()).json()
    fp = small["footprint"]
    assert fp["parameters_kept"] == small["remaining"] + (fp["parameters"] - small["prunable"])
    assert fp["macs_sparse"] < fp["macs_dense"]
    assert fp["bytes"]["compact"] < fp["bytes"]["stored"]
    assert fp["wire"]["mask"]["packed"] == len(client.get(small["links"]["mask_packed"]).content)
    assert fp["compact"]["parameters"] < fp["parameters"]
    page = client.get(f"/tickets/{small['id']}").text
    assert 'id="footprint"' in page and "mask?format=packed" in page and f"{fp['bytes']['compact']:,}" in page
    assert f"{fp['parameters_kept']:,} of {fp['parameters']:,}" in page
    limit = fp["parameters_kept"]
    ids = [t["id"] for t in client.get("/api/v1/tickets", params={"max_params": limit}).json()["items"]]
    assert small["id"] in ids and big["id"] not in ids


def test_tickets_stored_before_compact_forms_get_them_on_first_download(client: TestClient, auth: dict[str, str], db_session: Session) -> None:
    files = make_ticket(density=0.2)
    ticket = _upload(client, auth, files.manifest_bytes(), files.mask_bytes()).json()
    row = db_session.get(Ticket, ticket["id"])
    assert row is not None
    expected = row.mask_packed_sha256
    row.mask_packed_sha256 = row.init_kept_sha256 = row.init_kept_digest = None
    db_session.flush()
    packed = client.get(ticket["links"]["mask_packed"])
    assert packed.status_code == 200 and packed.headers["etag"] == f'"{expected}"'
    db_session.refresh(row)
    assert row.mask_packed_sha256 == expected and row.init_kept_digest is not None
