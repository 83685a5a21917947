"""The PromQL builders, by their text."""

from __future__ import annotations

import dataclasses

from apps.metrics import promql
from apps.metrics.promql import QuerySettings

FILTERED = QuerySettings(
    label_key="k8s_cluster",
    label_value='pr"od',
    namespaces=("shop", "pay.v2"),
    quantile=0.9,
    aggregation="max",
    step_seconds=60,
    window_seconds=3600,
)


def test_selector_has_the_external_label_and_controlled_namespaces():
    assert promql.selector(FILTERED, 'container!=""') == (
        '{k8s_cluster="pr\\"od", namespace=~"shop|pay\\\\.v2", container!=""}'
    )


def test_selector_excludes_namespaces_when_none_are_listed():
    settings = QuerySettings(excluded_namespaces=("kube-system", "kubedoor"))
    assert promql.selector(settings) == '{namespace!~"kube\\\\-system|kubedoor"}'
    assert promql.selector(QuerySettings()) == "{}"


def test_pod_to_deployment_uses_owners_then_the_name_pattern_once_per_query():
    text = promql.pod_deployment(QuerySettings(window_seconds=5400))
    assert text == (
        "(group by (namespace, pod, deployment) ("
        'label_replace(last_over_time(kube_pod_owner{owner_kind="ReplicaSet"}[5400s] @ end()), '
        '"replicaset", "$1", "owner_name", "(.*)")'
        " * on (namespace, replicaset) group_left (deployment) group by (namespace, replicaset, deployment) ("
        'label_replace(last_over_time(kube_replicaset_owner{owner_kind="Deployment"}[5400s] @ end()), '
        '"deployment", "$1", "owner_name", "(.*)")))'
        " or on (namespace, pod) group by (namespace, pod, deployment) ("
        "label_replace(last_over_time(container_memory_working_set_bytes"
        '{container!="", container!="POD", pod=~"(.+)-[a-z0-9]{5,10}-[a-z0-9]{5}"}[5400s] @ end()), '
        '"deployment", "$1", "pod", "(.+)-[a-z0-9]{5,10}-[a-z0-9]{5}")))'
    )


def test_cpu_statistic_uses_quantile_aggregation_and_explicit_step():
    text = promql.statistic_query(FILTERED, "p95_cpu_cores")
    mapping = promql.pod_deployment(FILTERED)
    usage = (
        'rate(container_cpu_usage_seconds_total{k8s_cluster="pr\\"od", namespace=~"shop|pay\\\\.v2", '
        'container!="", container!="POD"}[2m])'
    )
    assert text == (
        "quantile_over_time(0.9, (max by (namespace, deployment, container) ("
        f"({usage} * on (namespace, pod) group_left (deployment) {mapping})"
        "))[3600s:60s])"
    )


def test_memory_is_in_mib_and_percentages_divide_by_the_limit():
    assert promql.statistic_query(FILTERED, "p95_mem_mib").endswith("[3600s:60s]) / 1048576")
    pct = promql.statistic_query(FILTERED, "p95_mem_pct")
    assert " / on (namespace, pod, container) group_left max by (namespace, pod, container) (" in pct
    assert 'kube_pod_container_resource_limits{k8s_cluster="pr\\"od", namespace=~"shop|pay\\\\.v2", ' in pct
    assert 'resource="memory", container!=""}[3600s] @ end())) * 100))[3600s:60s])' in pct


def test_pct_of_limit_per_pod_can_be_restricted_to_some_pods():
    pct = promql.usage_pct_query(FILTERED, "cpu", namespaces=("shop", "pay"), pods=("b-1", "a.0"))
    restricted = r'namespace=~"pay|shop", pod=~"a\\.0|b\\-1"'
    assert f'container!="", container!="POD", {restricted}}}[2m])' in pct
    assert f'resource="cpu", container!="", {restricted}}}[3600s] @ end())' in pct


def test_requests_limits_and_running_pods_come_in_one_query_without_subquery():
    text = promql.resources_query(FILTERED)
    mapping = promql.pod_deployment(FILTERED)
    selector = 'k8s_cluster="pr\\"od", namespace=~"shop|pay\\\\.v2", container!=""'
    assert text == (
        "(("
        "label_replace(max by (namespace, pod, container, resource) (max_over_time("
        f"kube_pod_container_resource_requests{{{selector}}}[3600s])), "
        '"kubedoor_statistic", "request", "", "")'
        " or label_replace(max by (namespace, pod, container, resource) (max_over_time("
        f"kube_pod_container_resource_limits{{{selector}}}[3600s])), "
        '"kubedoor_statistic", "limit", "", "")'
        " or label_replace(group by (namespace, pod, container) (last_over_time("
        f'container_memory_working_set_bytes{{{selector}, container!="POD"}}[3600s])), '
        '"kubedoor_statistic", "running", "", ""))'
        f" * on (namespace, pod) group_left (deployment) {mapping})"
    )
    assert "[3600s:" not in text  # the maximum over time and over pods commute: no subquery


def test_ready_pods_keep_the_pod_mapping_where_the_pod_is_ready():
    pods = promql.statistic_query(FILTERED, "pod_count")
    mapping = promql.pod_deployment(FILTERED)
    assert pods == (
        f"min_over_time((count by (namespace, deployment) ({mapping} and on (namespace, pod) "
        '(kube_pod_status_ready{k8s_cluster="pr\\"od", namespace=~"shop|pay\\\\.v2", condition="true"} == 1)))'
        "[3600s:60s])"
    )


NAMED = dataclasses.replace(FILTERED, attribution="name")
PROMETHEUS_REQUESTS = ["p95_cpu_cores", "p95_mem_mib", "pod_count", "resources", "oom_kills", "throttled_pct", "pods"]


def test_day_queries_on_prometheus_are_one_request_per_subquery_then_resources_then_feedback_then_pods():
    queries = promql.day_queries(FILTERED)
    assert list(queries) == PROMETHEUS_REQUESTS
    assert queries["p95_mem_mib"] == promql.usage_query(NAMED, "mem")
    assert queries["resources"] == promql.resources_query(NAMED)
    assert queries["pods"] == promql.pod_deployment(FILTERED)
    # by name: no statistic evaluates the owners' mapping, only the pods request does
    for name, text in queries.items():
        assert ("kube_pod_owner" in text) == (name == "pods"), name


def test_day_queries_on_victoriametrics_put_the_subqueries_in_one_union():
    settings = dataclasses.replace(FILTERED, backend="victoriametrics")
    named = dataclasses.replace(settings, attribution="name")
    queries = promql.day_queries(settings)
    assert list(queries) == ["usage", "resources", "oom_kills", "throttled_pct", "pods"]
    parts = [
        f'label_replace({promql.statistic_query(named, name)}, "kubedoor_statistic", "{name}", "", "")'
        for name in ("p95_cpu_cores", "p95_mem_mib", "pod_count")
    ]
    assert queries["usage"] == f"union({', '.join(parts)})"


def test_name_attribution_reads_the_deployment_off_the_pod_name_at_each_step():
    usage = (
        'rate(container_cpu_usage_seconds_total{k8s_cluster="pr\\"od", namespace=~"shop|pay\\\\.v2", '
        'container!="", container!="POD"}[2m])'
    )
    assert promql.usage_query(NAMED, "cpu") == (
        "quantile_over_time(0.9, (max by (namespace, deployment, container) ("
        f'label_replace({usage}, "deployment", "$1", "pod", "(.+)-[a-z0-9]{{5,10}}-[a-z0-9]{{5}}")'
        "))[3600s:60s])"
    )


def test_name_attribution_counts_ready_pods_named_in_the_window_once_each():
    ready = 'kube_pod_status_ready{k8s_cluster="pr\\"od", namespace=~"shop|pay\\\\.v2", condition="true"}'
    pattern = promql.POD_NAME_PATTERN
    named = f'label_replace(last_over_time({ready}[3600s] @ end()), "deployment", "$1", "pod", "{pattern}")'
    assert promql.pod_count_query(NAMED) == (
        f"min_over_time((count by (namespace, deployment) (group by (namespace, pod, deployment) ({named}) "
        f"and on (namespace, pod) ({ready} == 1)))[3600s:60s])"
    )


def test_the_name_gives_the_deployment_as_label_replace_does():
    assert promql.named_deployment("cart-7d9f8b6c5d-x2k4q") == "cart"
    assert promql.named_deployment("my-api-v2-5f6d7c8b9-abcde") == "my-api-v2"
    assert promql.named_deployment("worker-a") is None
    assert promql.named_deployment("db-0") is None
    assert promql.named_deployment("Cart-7d9f8b6c5d-x2k4q") == "Cart"
    assert promql.named_deployment("cart-7d9f8b6c5d-x2k4q-extra") == "cart-7d9f8b6c5d"
    assert promql.named_deployment("cart-7D9F8B6C5D-x2k4q") is None  # the hash is lower case


def test_misnamed_lists_deployments_whose_names_and_owners_disagree_and_those_a_name_points_to():
    mapping = [
        ("shop", "cart-7d9f8b6c5d-x2k4q", "cart"),  # agrees
        ("pay", "worker-a", "queue-consumer"),  # not named like a ReplicaSet's pod
        ("shop", "web-5f6d7c8b9-abcde", "web-canary"),  # named like another Deployment
        ("ops", "legacy-5f6d7c8b9-abcde", "legacy"),  # mapped by its name: agrees
    ]
    assert promql.misnamed(mapping) == {("pay", "queue-consumer"), ("shop", "web-canary"), ("shop", "web")}
    assert promql.misnamed(mapping[:1] + mapping[3:]) == set()


def test_owner_queries_join_the_owners_for_the_listed_pods_only():
    queries = promql.owner_queries(FILTERED, ["pay", "shop", "pay"], ["worker-a", "worker-b"])
    assert list(queries) == list(promql.OWNER_STATISTICS)
    restrict = ('namespace=~"pay|shop"', 'pod=~"worker\\\\-a|worker\\\\-b"')
    owners = dataclasses.replace(FILTERED, attribution="owner")
    assert queries["p95_cpu_cores"] == promql.usage_query(owners, "cpu", *restrict)
    assert queries["pod_count"] == promql.pod_count_query(owners, *restrict)
    assert queries["resources"] == promql.resources_query(owners, *restrict)
    assert queries["throttled_pct"] == promql.throttled_pct_query(owners, *restrict)
    for text in queries.values():
        assert "group_left (deployment)" in text or "and on (namespace, pod)" in text
        assert 'pod=~"worker' in text
    many = [f"p-{n}" for n in range(promql.MAX_LISTED_PODS + 1)]
    unrestricted = promql.owner_queries(FILTERED, ["shop"], many)
    assert unrestricted["p95_mem_mib"] == promql.usage_query(owners, "mem")


def test_a_run_shows_its_requests_and_the_per_pod_percentages():
    assert list(promql.run_queries(FILTERED)) == [*PROMETHEUS_REQUESTS, "p95_cpu_pct", "p95_mem_pct"]


def test_oom_kills_prefer_cadvisor_events_then_oom_killed_restarts_over_the_window():
    text = promql.statistic_query(FILTERED, "oom_kills")
    selector = '{k8s_cluster="pr\\"od", namespace=~"shop|pay\\\\.v2"}'
    events, restarts = text.split(") or sum by (namespace, deployment, container) (")
    assert events.startswith("sum by (namespace, deployment, container) ((sum by (namespace, pod, container) (")
    assert f"increase(container_oom_events_total{selector}[3600s])" in events
    assert f"increase(kube_pod_container_status_restarts_total{selector}[3600s])" in restarts
    assert (
        'max_over_time(kube_pod_container_status_last_terminated_reason{k8s_cluster="pr\\"od", '
        'namespace=~"shop|pay\\\\.v2", reason="OOMKilled"}[3600s])'
    ) in restarts


def test_throttling_is_the_share_of_throttled_cfs_periods_in_percent():
    text = promql.statistic_query(FILTERED, "throttled_pct")
    assert "increase(container_cpu_cfs_throttled_periods_total{" in text
    assert "increase(container_cpu_cfs_periods_total{" in text
    assert text.endswith(" > 0) * 100")
