"""The client's compact downloads against the real API: packed mask and kept init (or
the seed) rebuilt into the ticket's dense tensors, digest-checked, cached, offline."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from nirvana import Client
from nirvana.decoding import check_digests_prove_id
from nirvana.errors import DigestMismatchError
from nirvana.lottery.tickets.digests import tensors_digest
from nirvana.lottery.tickets.files import dump_tensors, load_tensors
from nirvana.lottery.tickets.manifest import TicketFolder
from tests.nirvana.conftest import LiveApi
from tests.support.tickets import make_ticket


@pytest.fixture
def client(live_api: LiveApi, tmp_path: Path) -> Iterator[Client]:
    with Client(url=live_api.url, token=live_api.token, home=tmp_path / "home") as c:
        yield c


def _downloaded(client: Client, ticket_id: str) -> set[str]:
    """The kinds the cache fetched from the server for a ticket."""
    return set(client.cache.read_ref(ticket_id).get("blobs", {}))


def test_a_seed_ticket_loads_from_the_packed_mask_and_its_seed(client: Client, live_api: LiveApi, tmp_path: Path) -> None:
    files = make_ticket(density=0.2)
    ticket = client.upload(files.manifest, files.mask)
    model, mask = client.load(ticket.short_id)
    assert _downloaded(client, ticket.id) == {"mask_packed", "mask_decoded", "init_decoded"}  # no init on the wire
    assert tensors_digest(mask) == tensors_digest(files.mask)
    for name, keep in mask.items():
        module = model.get_submodule(name.rpartition(".")[0])
        assert torch.equal(getattr(module, "weight_orig").detach(), files.init[name])
    dense_model, _ = client.load(ticket.id, format="dense")
    x = torch.randn(4, 64)
    assert torch.equal(model(x), dense_model(x))
    folder = client.download(ticket.id, tmp_path / "pulled")
    _, mask2, init2 = TicketFolder.read(folder)
    assert init2 is not None and tensors_digest(init2) == tensors_digest(files.init)
    assert client.upload(json.loads((folder / "ticket.json").read_text()), mask2).id == ticket.id
    with Client(url=live_api.url, home=client.home, offline=True) as offline:
        offline_model, _ = offline.load(ticket.short_id)
        assert torch.equal(offline_model(x), model(x))


def test_a_rewound_ticket_loads_from_its_kept_values(client: Client, tmp_path: Path) -> None:
    files = make_ticket(density=0.2, mask_seed=4)
    manifest = {**files.manifest, "init": {"scheme": "kaiming_normal", "rewind_step": 5}}
    rewound = {name: t + 0.5 for name, t in files.init.items()}  # pruned weights nonzero
    ticket = client.upload(manifest, files.mask, dump_tensors(rewound))
    model, mask = client.load(ticket.id)
    assert _downloaded(client, ticket.id) == {"mask_packed", "mask_decoded", "init_kept", "init_masked"}
    dense_model, _ = client.load(ticket.id, format="dense")
    x = torch.randn(4, 64)
    assert torch.equal(model(x), dense_model(x))
    # a folder must be the ticket itself: the kept values cannot say what pruned weights were
    folder = client.download(ticket.id, tmp_path / "pulled")
    assert tensors_digest(load_tensors((folder / "init.safetensors").read_bytes())) == tensors_digest(rewound)
    assert "init" in _downloaded(client, ticket.id)


def test_digests_that_do_not_hash_to_the_id_are_refused(client: Client) -> None:
    files = make_ticket(density=0.2, mask_seed=8)
    ticket = client.upload(files.manifest, files.mask)
    answer = ticket.model_dump(mode="json")
    check_digests_prove_id(answer)
    kept = answer["footprint"]["parameters_kept"]
    assert [t.id for t in client.tickets(max_params=kept)] == [ticket.id]
    assert list(client.tickets(max_params=kept - 1)) == []
    forged = {**answer, "digests": {**answer["digests"], "mask": "0" * 64}}
    with pytest.raises(DigestMismatchError):
        check_digests_prove_id(forged)
