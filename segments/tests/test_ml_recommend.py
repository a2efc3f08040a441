"""Recommendations on real interactions: MovieLens-100k (100,000 ratings of 1,682 films by
943 people) sent through the collector as Product Viewed events, a recommendation model
trained by a real run — popularity, item-kNN and EASE graded on the same held-out split —
its top-N written per person, fold-in for a newcomer, similar items, the catalogue API,
availability and personalisation consent honoured."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from consent.services import purposes_install_defaults
from profiles.demo.movielens import load_movielens, movielens_batches, product_id_of
from profiles.models import Profile
from profiles.pipeline import queue
from segments.ml import jobs, recommend, services
from segments.ml.models import Item, MLModel, ModelVersion, RunStatus, VersionStatus
from tests.fixtures import Tenant, post_collector

STAR_WARS, EMPIRE, RETURN_OF_THE_JEDI = 50, 172, 181
RAIDERS, INDIANA_JONES_LAST_CRUSADE = 174, 210


def _send(tenant: Tenant, batches: Any) -> int:
    client = Client()
    sent = 0
    for batch in batches:
        response = post_collector(client, "/v1/batch", {"batch": batch}, write_key=tenant.write_key)
        assert response.status_code == 200, response.content
        sent += len(batch)
    while queue.drain(batch_size=2000)[1]:
        pass
    return sent


@pytest.fixture
def movielens(tenant_a: Tenant) -> Tenant:
    purposes_install_defaults(workspace=tenant_a.workspace)
    started = time.monotonic()
    ratings, films = load_movielens()
    sent = _send(tenant_a, movielens_batches(ratings, films, now=timezone.now()))
    print(f"loaded {sent:,} events in {time.monotonic() - started:.1f} s")
    return tenant_a


def _train(model: MLModel, capture: Any) -> ModelVersion:
    with capture(execute=False):
        run = services.ml_train(model=model, actor=None)
    started = time.monotonic()
    assert jobs.execute(run.pk) == RunStatus.SUCCEEDED, run.error
    run.refresh_from_db()
    print(f"trained in {time.monotonic() - started:.1f} s\n{run.log}")
    return ModelVersion.objects.get(run=run)


def test_recommendations_on_movielens(
    movielens: Tenant, django_capture_on_commit_callbacks: Any
) -> None:
    workspace = movielens.workspace
    model = services.ml_model_create(
        workspace=workspace, actor=None,
        data={"key": "next_films", "name": "Films to watch next", "kind": "recommendations",
              "config": {"seed": 42, "exclude": "interacted", "top_n": 10}},
    )  # fmt: skip
    version = _train(model, django_capture_on_commit_callbacks)
    m, graded = version.metrics, version.charts["algorithms"]
    print({a: {k: round(v, 4) for k, v in g.items()} for a, g in graded.items()})
    assert version.status == VersionStatus.CHAMPION and version.score_metric == "ndcg_at_10"
    assert set(graded) == {recommend.POPULARITY, recommend.KNN, recommend.EASE}
    # thresholds that can fail (published on this split: popularity 0.21, EASE 0.44)
    popular = graded[recommend.POPULARITY]["ndcg_at_10"]
    assert 0.17 < popular < 0.26
    assert m["ndcg_at_10"] > popular + 0.1 and m["ndcg_at_10"] > 0.38
    assert m["algorithm"] in (recommend.EASE, recommend.KNN)
    assert m["precision_at_10"] > graded[recommend.POPULARITY]["precision_at_10"]
    assert 0 < m["recall_at_20"] < 1 and m["coverage"] > graded[recommend.POPULARITY]["coverage"]
    assert version.rows["items"] == 1682 and version.rows["interactions"] == 100_000

    # the catalogue: every film with its title and genre, most watched first
    assert Item.objects.filter(workspace=workspace).count() == 1682
    star_wars = Item.objects.get(workspace=workspace, item_id=product_id_of(STAR_WARS))
    assert star_wars.name == "Star Wars" and star_wars.category == "Action"
    api = movielens.api()
    listed = api.get("/api/v1/items/?ordering=interactions").json()
    assert listed["count"] == 1682 and listed["results"][0]["item_id"] == product_id_of(STAR_WARS)
    assert api.get("/api/v1/items/?q=jedi").json()["results"][0]["name"] == "Return of the Jedi"

    # similar items: the other Star Wars films are Star Wars' nearest neighbours
    similar = api.get(f"/api/v1/items/{product_id_of(STAR_WARS)}/similar/?n=5").json()
    near = [s["item_id"] for s in similar["results"]]
    assert {product_id_of(EMPIRE), product_id_of(RETURN_OF_THE_JEDI)} <= set(near)

    # scoring: ten films per person, none already seen; without personalisation consent,
    # the most popular unseen films
    model.refresh_from_db()
    people = list(Profile.objects.filter(workspace=workspace, merged_into__isnull=True))
    stored = {p.pk: p.computed.get("next_films") for p in people}
    assert model.scored_count == len(people) == 943
    assert all(isinstance(v, list) and len(v) == 10 for v in stored.values())
    one = people[0]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT properties ->> 'product_id' FROM profiles_profileevent WHERE profile_id = %s",
            [one.pk],
        )
        seen = {row[0] for row in cursor.fetchall()}
    assert len(seen) >= 20 and not seen & set(stored[one.pk])
    answer = api.get(f"/api/v1/profiles/{one.pk}/recommendations/?n=10").json()
    assert answer["model"] == "next_films" and answer["version"] == version.number
    assert len(answer["items"]) == 10 and all(i["name"] for i in answer["items"])
    assert answer["source"] in ("personalised", "popular")

    # a newcomer the model never saw: folded in from their first films
    newcomer = [product_id_of(i) for i in (STAR_WARS, EMPIRE, RAIDERS)]
    _send(movielens, [[
        {"type": "track", "event": "Product Viewed", "userId": "newcomer", "messageId": f"nc-{i}",
         "properties": {"product_id": item},
         "context": {"consent": {"categoryPreferences": {"personalization": True,
                                                         "analytics": True}}}}
        for i, item in enumerate(newcomer)
    ]])  # fmt: skip
    fresh = Profile.objects.get(workspace=workspace, traits__isnull=False, computed__isnull=False,
                                identities__value="newcomer")  # fmt: skip
    folded = api.get(f"/api/v1/profiles/{fresh.pk}/recommendations/?n=10").json()
    assert folded["source"] == "personalised", folded
    picked = [i["item_id"] for i in folded["items"]]
    assert not set(picked) & set(newcomer)
    assert {product_id_of(RETURN_OF_THE_JEDI), product_id_of(INDIANA_JONES_LAST_CRUSADE)} & set(
        picked[:5]
    )
    print(f"fold-in answered in {folded['milliseconds']} ms")

    # an unavailable item is never recommended; an edited name survives a rebuild
    top = picked[0]
    response = api.patch(f"/api/v1/items/{top}/", {"available": False, "name": "Renamed"},
                         content_type="application/json")  # fmt: skip
    assert response.status_code == 200 and response.json()["edited_fields"] == [
        "available", "name"]  # fmt: skip
    again = api.get(f"/api/v1/profiles/{fresh.pk}/recommendations/?n=10").json()
    assert top not in [i["item_id"] for i in again["items"]]
    assert api.patch(f"/api/v1/items/{top}/", {"price": -1},
                     content_type="application/json").status_code == 400  # fmt: skip

    # without personalisation consent: the popular films, whatever the history
    _send(movielens, [[{"type": "track", "event": "Product Viewed", "userId": "newcomer",
                        "messageId": "nc-no", "properties": {"product_id": newcomer[0]},
                        "context": {"consent": {"categoryPreferences": {
                            "personalization": False, "analytics": True}}}}]])  # fmt: skip
    refused = api.get(f"/api/v1/profiles/{fresh.pk}/recommendations/").json()
    assert refused["source"] == "popular" and "consent" in refused["reason"]

    # clear errors
    assert api.get(f"/api/v1/profiles/{fresh.pk}/recommendations/?n=0").status_code == 400
    missing = api.get(f"/api/v1/profiles/{fresh.pk}/recommendations/?model=nope")
    assert (
        missing.status_code == 409 and missing.json()["error"]["code"] == "no_recommendation_model"
    )
    assert api.get("/api/v1/profiles/99999999/recommendations/").status_code == 404
    assert api.get("/api/v1/items/nope/").status_code == 404


def test_recommendations_need_enough_history(
    tenant_a: Tenant, django_capture_on_commit_callbacks: Any
) -> None:
    purposes_install_defaults(workspace=tenant_a.workspace)
    ratings, films = load_movielens()
    _send(tenant_a, movielens_batches(ratings[:50], films, now=timezone.now()))
    model = services.ml_model_create(
        workspace=tenant_a.workspace, actor=None,
        data={"key": "recs", "name": "Recs", "kind": "recommendations"},
    )  # fmt: skip
    with django_capture_on_commit_callbacks(execute=False):
        run = services.ml_train(model=model, actor=None)
    assert jobs.execute(run.pk) == RunStatus.FAILED
    run.refresh_from_db()
    assert "interactions (needs 20 people, 5 items and 100 interactions)" in run.error
