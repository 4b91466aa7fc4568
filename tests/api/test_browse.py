"""Browsing: filters, sorts, keyset pagination, tasks and architectures."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from db.models.tickets import Ticket
from tests.support.tickets import make_ticket


def _upload(client: TestClient, auth: dict[str, str], **kwargs: object) -> dict:
    response = client.post("/api/v1/tickets", files=make_ticket(**kwargs).multipart(), headers=auth)  # type: ignore[arg-type]
    assert response.status_code == 201, response.text
    return response.json()


def _ids(page: dict) -> list[str]:
    return [item["id"] for item in page["items"]]


def test_filters_by_task_arch_tag_sparsity_and_verified(client: TestClient, auth: dict[str, str], db_session: Session) -> None:
    dense = _upload(client, auth, density=0.9, tags=["dense-ish"])
    sparse = _upload(client, auth, density=0.1, mask_seed=1, tags=["sparse", "imp"])
    other_arch = _upload(client, auth, architecture="lenet_16", density=0.5)
    mnist1d = _upload(client, auth, task="mnist1d", density=0.5)
    db_session.execute(update(Ticket).where(Ticket.id == sparse["id"]).values(verified=True))

    def ids(**params: object) -> set[str]:
        response = client.get("/api/v1/tickets", params=params)
        assert response.status_code == 200, response.text
        return set(_ids(response.json()))

    assert ids(task="digits") == {dense["id"], sparse["id"], other_arch["id"]}
    assert ids(task="mnist1d") == {mnist1d["id"]}
    assert ids(arch="lenet_16") == {other_arch["id"]}
    assert ids(tag="sparse") == {sparse["id"]}
    assert ids(min_sparsity=0.8) == {sparse["id"]}
    assert ids(max_sparsity=0.2) == {dense["id"]}
    assert ids(verified=True) == {sparse["id"]}
    assert sparse["id"] not in ids(verified=False)


def test_sorts_and_keyset_pagination_visit_every_ticket_once(client: TestClient, auth: dict[str, str]) -> None:
    uploaded = [_upload(client, auth, density=d, mask_seed=i, claimed=c) for i, (d, c) in
                enumerate([(0.5, 0.8), (0.2, 0.9), (0.7, 0.85), (0.3, 0.7), (0.4, 0.95)])]
    by_density = [t["id"] for t in sorted(uploaded, key=lambda t: (t["density"], t["id"]))]
    by_accuracy = [t["id"] for t in sorted(uploaded, key=lambda t: (-t["accuracy"], t["id"]))]
    for sort, expected in (("-sparsity", by_density), ("-accuracy", by_accuracy)):
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            params = {"sort": sort, "limit": 2, **({"cursor": cursor} if cursor else {})}
            response = client.get("/api/v1/tickets", params=params)
            page = response.json()
            seen += _ids(page)
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                assert "link" not in response.headers
                break
            assert 'rel="next"' in response.headers["link"]
        assert seen == expected and pages == 3
    newest = client.get("/api/v1/tickets", params={"sort": "-created", "limit": 1}).json()
    assert len(newest["items"]) == 1


def test_bad_list_parameters_are_problems(client: TestClient) -> None:
    cases = [
        ({"sort": "name"}, 422, "invalid_sort"),
        ({"limit": 500}, 422, "validation_error"),
        ({"cursor": "not-a-cursor"}, 400, "invalid_cursor"),
        ({"min_sparsity": 2}, 422, "validation_error"),
    ]
    for params, status, code in cases:
        response = client.get("/api/v1/tickets", params=params)
        assert (response.status_code, response.json()["code"]) == (status, code), params


def test_cursor_of_another_sort_is_refused(client: TestClient, auth: dict[str, str]) -> None:
    for i in range(3):
        _upload(client, auth, mask_seed=i)
    cursor = client.get("/api/v1/tickets", params={"sort": "-sparsity", "limit": 1}).json()["next_cursor"]
    response = client.get("/api/v1/tickets", params={"sort": "-accuracy", "cursor": cursor})
    assert (response.status_code, response.json()["code"]) == (400, "invalid_cursor")


def test_tasks_list_sizes_availability_and_counts(client: TestClient, auth: dict[str, str]) -> None:
    _upload(client, auth)
    tasks = {t["name"]: t for t in client.get("/api/v1/tasks").json()["items"]}
    assert {"digits", "mnist1d", "fashion-mnist"} <= set(tasks)
    assert (tasks["digits"]["train_size"], tasks["digits"]["test_size"]) == (1500, 297)
    assert (tasks["mnist1d"]["train_size"], tasks["mnist1d"]["test_size"]) == (4000, 1000)
    assert tasks["digits"]["available"] is True
    assert tasks["digits"]["ticket_count"] == 1 and tasks["mnist1d"]["ticket_count"] == 0
    assert tasks["digits"]["default_recipe"]["steps"] > 0


def test_architecture_lists_parameters_for_a_task(client: TestClient) -> None:
    body = client.get("/api/v1/architectures/lenet_300_100", params={"task": "fashion-mnist"}).json()
    shapes = {p["name"]: (p["shape"], p["prunable"]) for p in body["parameters"]}
    assert shapes["fc1.weight"] == ([300, 784], True)
    assert shapes["fc1.bias"] == ([300], False)
    assert shapes["fc3.weight"] == ([10, 100], True)
    assert (body["total"], body["prunable"]) == (266_610, 266_200)
    assert not any(p["buffer"] for p in body["parameters"])
    resnet = client.get("/api/v1/architectures/resnet20", params={"task": "cifar10"}).json()
    buffers = [p["name"] for p in resnet["parameters"] if p["buffer"]]
    assert "bn.running_mean" in buffers and not any(p["prunable"] for p in resnet["parameters"] if p["buffer"])
    conv_on_1d = client.get("/api/v1/architectures/conv4", params={"task": "mnist1d"})
    assert (conv_on_1d.status_code, conv_on_1d.json()["code"]) == (422, "incompatible_task")
    unknown = client.get("/api/v1/architectures/resnet9000x", params={"task": "digits"})
    assert (unknown.status_code, unknown.json()["code"]) == (422, "unknown_architecture")
    no_task = client.get("/api/v1/architectures/lenet_300_100", params={"task": "nope"})
    assert (no_task.status_code, no_task.json()["code"]) == (422, "unknown_task")
