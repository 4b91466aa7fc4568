"""A ticket as a folder the Hugging Face Hub takes as it is (``huggingface-cli upload``
or ``HfApi.upload_folder``):

```
model.safetensors   the init: the state_dict the ticket is reset to (dense)
mask.safetensors    one BOOL tensor per pruned parameter, by state_dict name
config.json         architecture, task, shapes, init, recipe, id, sparsity, server
README.md           the model card: YAML metadata (library_name, tags, datasets,
                    metrics, license, base_model when the ticket has a parent),
                    the verdict table, how to load it, and the BibTeX entry
```

The card's YAML is written by hand (JSON strings are YAML strings), so exporting needs
neither huggingface_hub nor PyYAML; the tests parse it with ``huggingface_hub.ModelCard``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from nirvana.client import Client
from nirvana.hub_types import TicketInfo, VerificationInfo
from nirvana.states import VerificationState
from nirvana.lottery.tickets.citation import TicketCitation

#: Hub dataset ids of the tasks that have one (the Hub's card metadata names datasets so).
HUB_DATASETS = {"mnist": "ylecun/mnist", "fashion-mnist": "zalando-datasets/fashion_mnist", "cifar10": "uoft-cs/cifar10"}
#: The Hub's license ids are lowercase SPDX-like names; anything else is "other".
HUB_LICENSES = frozenset({
    "apache-2.0", "mit", "cc-by-4.0", "cc-by-sa-4.0", "cc-by-nc-4.0", "cc-by-nc-sa-4.0", "cc0-1.0",
    "bsd-3-clause", "bsd-2-clause", "gpl-3.0", "lgpl-3.0", "mpl-2.0", "openrail", "unlicense",
})  # fmt: skip
ARMS = ("ticket", "dense", "reinit", "random_mask")


def export_hf(
    client: Client, id: str, out: Path, *, citation: TicketCitation, hub_namespace: str | None = None
) -> Path:
    """Write the Hub folder of ticket ``id`` into ``out`` (created; files in it replaced).

    Args:
        citation: the ticket's BibTeX entry, carried by the card.
        hub_namespace: the Hub user or organisation the tickets are pushed under; with
            it, a ticket found from a parent ticket names ``<namespace>/nirvana-<parent
            short id>`` as its ``base_model``.

    Returns:
        ``out``.
    """
    ticket = client.ticket(id)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="nirvana-export-") as tmp:
        files = client.download(ticket.id, Path(tmp))
        shutil.copyfile(files / "init.safetensors", out / "model.safetensors")
        shutil.copyfile(files / "mask.safetensors", out / "mask.safetensors")
    (out / "config.json").write_text(json.dumps(hub_config(ticket, client), indent=2) + "\n")
    (out / "README.md").write_text(model_card(ticket, citation=citation, server=client.url, hub_namespace=hub_namespace))
    return out


def hub_repo_name(short_id: str) -> str:
    """The repository name an exported ticket is meant to get on the Hub."""
    return f"nirvana-{short_id}"


def hub_config(ticket: TicketInfo, client: Client) -> dict[str, Any]:
    """``config.json``: what rebuilding the model needs, and where the ticket came from."""
    task = next((t for t in client.tasks() if t.name == ticket.task), None)
    return {
        "library_name": "nirvana",
        "architecture": ticket.architecture,
        "task": ticket.task,
        "input_shape": task.input_shape if task else None,
        "num_classes": task.num_classes if task else None,
        "init": ticket.init.model_dump(mode="json"),
        "recipe": ticket.recipe,
        "ticket_id": ticket.id,
        "density": ticket.density,
        "sparsity": ticket.sparsity,
        "parent": ticket.parent,
        "server": client.url,
    }


def _yaml(metadata: dict[str, Any]) -> str:
    lines = []
    for key, value in metadata.items():
        if isinstance(value, list):
            lines.append(f"{key}:")
            lines += [f"- {json.dumps(item)}" for item in value]
        else:
            lines.append(f"{key}: {json.dumps(value)}")
    return "\n".join(lines)


def card_metadata(ticket: TicketInfo, *, hub_namespace: str | None) -> dict[str, Any]:
    """The card's YAML header, in the Hub's field names."""
    license = (ticket.license or "").lower()
    tags = ["lottery-ticket", "pruning", "sparse", "nirvana", ticket.architecture, ticket.task, *ticket.tags]
    metadata: dict[str, Any] = {
        "library_name": "nirvana",
        "license": license if license in HUB_LICENSES else "other",
        "tags": list(dict.fromkeys(tags)),
    }
    if ticket.task in HUB_DATASETS:
        metadata["datasets"] = [HUB_DATASETS[ticket.task]]
    metadata["metrics"] = ["accuracy"]
    if ticket.parent and hub_namespace:
        metadata["base_model"] = f"{hub_namespace}/{hub_repo_name(ticket.parent[:12])}"
    return metadata


def _latest_result(ticket: TicketInfo) -> VerificationInfo | None:
    done = [v for v in ticket.verifications if v.state is VerificationState.SUCCEEDED and v.result and v.task == ticket.task]
    return max(done, key=lambda v: str(v.created_at or "")) if done else None


def verdict_table(ticket: TicketInfo) -> str:
    """The latest verification on the ticket's own task, one row per arm, in Markdown."""
    verification = _latest_result(ticket)
    if verification is None or verification.result is None:
        return f"Not verified yet: the claim is {100 * ticket.claimed.test_accuracy:.2f}% test accuracy."
    result = verification.result
    runs = result.get("runs") or {}
    rows = ["| run | test accuracy | weights remaining |", "|---|---:|---:|"]
    for arm in (a for a in ARMS if a in runs):
        run = runs[arm]
        rows.append(f"| {arm.replace('_', ' ')} | {100 * float(run['test_accuracy']):.2f}% | {100 * float(run['density']):.2f}% |")
    verdict = result.get("verdict") or ("winning" if result.get("winning") else "not winning")
    reproduced = "reproduced" if result.get("reproduced") else "not reproduced"
    return "\n".join(rows) + (
        f"\n\nVerdict: **{str(verdict).replace('_', ' ')}**; the claim of {100 * ticket.claimed.test_accuracy:.2f}% "
        f"was {reproduced}. Retrained by the server on {result.get('device', '?')} with torch "
        f"{result.get('torch_version', '?')} (verification `{verification.id}`)."
    )


def model_card(ticket: TicketInfo, *, citation: TicketCitation, server: str, hub_namespace: str | None = None) -> str:
    """``README.md``: YAML metadata, then the card's text."""
    title = ticket.title or f"{ticket.architecture} on {ticket.task}"
    return f"""---
{_yaml(card_metadata(ticket, hub_namespace=hub_namespace))}
---

# {title}

A lottery ticket from [Nirvana]({server}): a `{ticket.architecture}` network on `{ticket.task}`
that keeps {100 * ticket.density:.2f}% of its prunable weights ({ticket.remaining:,} of {ticket.prunable:,}),
reset to its initial weights. Ticket `{ticket.id}`; its page: {citation.page}.

{ticket.description}

## Verification

{verdict_table(ticket)}

## Files

- `model.safetensors`: the initial weights the ticket is reset to (init `{ticket.init.scheme}`,
  seed {ticket.init.seed}, rewind step {ticket.init.rewind_step}).
- `mask.safetensors`: one boolean tensor per pruned parameter; a parameter without one is dense.
- `config.json`: architecture, task, input shape, classes, recipe, ticket id.

## Use

```python
from nirvana import Client
model, mask = Client("{server}").load("{ticket.short_id}")   # pruned in place, ready to train
```

Without Nirvana: load both files with `safetensors.torch.load_file`, build the architecture,
`model.load_state_dict(init)`, then `torch.nn.utils.prune.custom_from_mask(module, name, mask)`
for each masked parameter.

## Citation

```bibtex
{citation.bibtex().rstrip()}
```
"""
