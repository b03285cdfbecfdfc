#!/usr/bin/env python3
"""Official-SDK compatibility check for the sasrelay Security Center simulator.

The official Python SDK (alibabacloud-sas20181203 + alibabacloud-tea-openapi) acts as the client:
it signs with V3 (its default), with V1 (Config(signature_algorithm="v2")) and with an STS token
under both, and calls every action the simulator implements, the handling (write) actions
included: it whitelists, ignores and restores alerts through tasks it follows to their end, ignores
and restores a vulnerability, ignores, restores and re-checks a baseline warning, and checks through
the control endpoints that the world changed. It chains the detail actions from a listed alert
(DescribeSuspEventDetail by its Id, DescribeAlarmEventDetail by its AlarmUniqueInfo), lists the
container firewall rules (ListInterceptionRulePage, searched by name and id) and switches the rule
of a firewall alert off and on (ModifyInterceptionRuleSwitch), checking what the SDK decodes. For
each response:

  * the raw JSON body (captured from the SDK's own call_api) survives
    Model().from_map(body).to_map() unchanged, and equals the typed response's to_map();
  * every field of the SDK response model is present, recursively, and no key is unknown to it;
  * JSON value types match the SDK annotations (deliberate deviations listed below);
  * the Response wrapper (headers/statusCode/body) round-trips too.

It also checks that the SDK understands the simulator's errors (SignatureDoesNotMatch for a wrong
secret, a throttling error with x-acs-retry-after, SecurityEventNotExists / InvalidParameter /
MissingParameter of the detail and rule actions) — the error bodies must parse as the SDK expects.

Usage: check_sdk.py --port PORT [--ak sasrelay-sim --secret sasrelay-sim-secret]
Exit status 0 when everything matches; otherwise the failures are printed and the status is 1.
"""
import argparse
import ast
import inspect
import json
import re
import sys
import time
import urllib.request

from alibabacloud_sas20181203 import models as M
from alibabacloud_sas20181203.client import Client
from alibabacloud_tea_openapi import utils_models as open_api_models

# Deliberate deviations from SDK type annotations (as in the contract's make_samples.py).
EXPECTED_TYPE_DEVIATIONS = {
    # SDK says int; the documentation describes (and the samples carry) the alert name as text.
    "ListInterceptionHistory.InterceptionHistoryList[].InterceptionName",
}

FAILURES = []


def fail(msg):
    FAILURES.append(msg)
    print("FAIL " + msg)


def norm(x):
    return json.loads(json.dumps(x))


# ------------------------------------------------------------------ SDK model introspection ----
def pytype_ok(ann, v):
    a = ann.replace("main_models.", "")
    if v is None:
        return True
    if a == "int":
        return isinstance(v, int) and not isinstance(v, bool)
    if a == "str":
        return isinstance(v, str)
    if a == "bool":
        return isinstance(v, bool)
    if a == "float":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if a.startswith("List"):
        return isinstance(v, list)
    if a.startswith("Dict"):
        return isinstance(v, dict)
    return isinstance(v, dict)


_FIELDS = {}


def fields(cls):
    """JSON key -> (attribute, annotation) read from the SDK model's own source."""
    if cls in _FIELDS:
        return _FIELDS[cls]
    src = open(inspect.getsourcefile(cls), encoding="utf-8").read()
    tree = ast.parse(src)
    node = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls.__name__][0]
    init = [n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"][0]
    fm = [n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "from_map"][0]
    ann = {a.arg: ast.unparse(a.annotation) for a in init.args.args[1:] if a.annotation}
    seg = "\n".join(src.split("\n")[fm.lineno - 1:fm.end_lineno])
    out = {}
    for blk in re.split(r"\n\s+if m\.get\(", seg)[1:]:
        key = re.match(r"'([^']+)'\)", blk).group(1)
        attr = re.search(r"self\.(\w+)", blk).group(1)
        out[key] = (attr, ann.get(attr, "?"))
    if not out:
        raise RuntimeError("could not read the fields of %s" % cls.__name__)
    _FIELDS[cls] = out
    return out


def deviation(p):
    """Whether `p` (prefixed with the signing mode) is a listed deliberate type deviation."""
    return p.split(" ", 1)[-1] in EXPECTED_TYPE_DEVIATIONS


def check_model(cls, data, path, omit=()):
    """Every model field present (except `omit` at the top), no unknown key, types as annotated."""
    f = fields(cls)
    for k in data:
        if k not in f:
            fail("%s.%s: key not in SDK model %s (the SDK would drop it)" % (path, k, cls.__name__))
    for k, (_attr, a) in f.items():
        if k not in data:
            if k not in omit:
                fail("%s.%s: SDK model field missing from the response" % (path, k))
            continue
        v = data[k]
        p = "%s.%s" % (path, k)
        sub = re.search(r"main_models\.(\w+)", a)
        if a.startswith("List") and sub:
            if not isinstance(v, list):
                fail("%s: %r is not a list" % (p, v))
                continue
            for it in v:
                check_model(getattr(M, sub.group(1)), it, p + "[]")
        elif a.startswith("List"):
            inner = a[5:-1]
            if not isinstance(v, list):
                fail("%s: %r is not a list" % (p, v))
                continue
            for it in v:
                if not pytype_ok(inner, it) and not deviation(p + "[]"):
                    fail("%s[]: %r is not %s" % (p, it, inner))
        elif sub:
            if not isinstance(v, dict):
                fail("%s: %r is not an object" % (p, v))
                continue
            check_model(getattr(M, sub.group(1)), v, p)
        elif not pytype_ok(a, v) and not deviation(p):
            fail("%s: %r is not SDK type %s" % (p, v, a))


# ------------------------------------------------------------------------ simulator access ----
class Sim:
    def __init__(self, port):
        self.base = "http://127.0.0.1:%d" % port

    def control(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read().decode())


def make_client(port, ak, secret, token=None, v1=False):
    cfg = open_api_models.Config(
        access_key_id=ak, access_key_secret=secret, security_token=token,
        endpoint="127.0.0.1:%d" % port, protocol="http",
        read_timeout=10000, connect_timeout=5000,
    )
    if v1:
        cfg.signature_algorithm = "v2"
    client = Client(cfg)
    captured = {}
    original = client.call_api

    def spy(params, request, runtime):
        result = original(params, request, runtime)
        captured["body"] = norm(result.get("body"))
        captured["action"] = params.action
        return result

    # The generated methods call self.call_api; an instance attribute shadows the method.
    client.call_api = spy
    return client, captured


def typed(captured):
    """The typed response body (the SDK model) of the last `call`, or None."""
    return captured.get("typed")


def call(client, captured, mode, action, request, omit=(), require_nonempty=None):
    """Calls `action` through the typed SDK method and checks the response. Returns the raw body."""
    method = re.sub(r"(?<!^)(?=[A-Z])", "_", action).lower()
    label = "%s %s" % (mode, action)
    captured.clear()
    try:
        resp = getattr(client, method)(request)
    except Exception as e:  # noqa: BLE001 - report any SDK failure with its text
        fail("%s: SDK raised %s: %s" % (label, type(e).__name__, e))
        return None
    captured["typed"] = resp.body
    raw = captured.get("body")
    if captured.get("action") != action or not isinstance(raw, dict):
        fail("%s: no JSON object captured (%r)" % (label, raw))
        return None
    body_cls = getattr(M, action + "ResponseBody")
    before = len(FAILURES)
    if norm(body_cls().from_map(norm(raw)).to_map()) != raw:
        fail("%s: from_map/to_map round trip differs from the body sent" % label)
    if norm(resp.body.to_map()) != raw:
        fail("%s: typed response to_map() differs from the raw body" % label)
    wrap = getattr(M, action + "Response")().from_map({"headers": {}, "statusCode": 200, "body": raw}).to_map()
    if norm(wrap["body"]) != raw:
        fail("%s: Response wrapper round trip differs" % label)
    check_model(body_cls, raw, label, omit)
    if require_nonempty and not raw.get(require_nonempty):
        fail("%s: %s is empty, so its items were not checked" % (label, require_nonempty))
    if not isinstance(raw.get("RequestId"), str) or not raw["RequestId"]:
        fail("%s: RequestId missing" % label)
    if len(FAILURES) == before:
        print("ok   %s" % label)
    return raw


def run_mode(port, mode, ak, secret, token, v1, cluster):
    client, cap = make_client(port, ak, secret, token, v1)
    c = cluster
    alerts = call(client, cap, mode, "DescribeSuspEvents",
                  M.DescribeSuspEventsRequest(cluster_id=c, from_="sas", lang="en", current_page="1",
                                              page_size="100"),
                  require_nonempty="SuspEvents")
    if alerts and alerts.get("SuspEvents"):
        run_details(client, cap, mode, alerts["SuspEvents"][0])
    call(client, cap, mode, "DescribeSuspEvents",
         M.DescribeSuspEventsRequest(cluster_id=c, from_="sas", dealed="N", levels="serious,suspicious",
                                     time_start="2000-01-01 00:00:00", tactic_id="TA0002"))
    call(client, cap, mode, "GetClusterSuspEventStatistics",
         M.GetClusterSuspEventStatisticsRequest(cluster_id=c, from_="sas"))
    call(client, cap, mode, "DescribeVulList",
         M.DescribeVulListRequest(type="cve", cluster_id=c, lang="en", current_page=1, page_size=50),
         require_nonempty="VulRecords")
    call(client, cap, mode, "DescribeVulList",
         M.DescribeVulListRequest(type="app", attach_types="sca", dealed="n", page_size=50),
         require_nonempty="VulRecords")
    tok = call(client, cap, mode, "DescribeVulList",
               M.DescribeVulListRequest(type="cve", use_next_token=True, page_size=2),
               omit=("TotalCount",), require_nonempty="VulRecords")
    if tok is not None:
        if "TotalCount" in tok:
            fail("%s DescribeVulList: TotalCount present with UseNextToken" % mode)
        if tok.get("NextToken"):
            call(client, cap, mode, "DescribeVulList",
                 M.DescribeVulListRequest(type="cve", use_next_token=True, page_size=2,
                                          next_token=tok["NextToken"]), omit=("TotalCount",))
    call(client, cap, mode, "DescribeClusterVulStatistics",
         M.DescribeClusterVulStatisticsRequest(cluster_id=c, types="cve,sca,app"))
    summ = call(client, cap, mode, "DescribeCheckWarningSummary",
                M.DescribeCheckWarningSummaryRequest(cluster_id=c, lang="en", current_page=1, page_size=20),
                require_nonempty="WarningSummarys")
    risk_id = summ["WarningSummarys"][0]["RiskId"] if summ and summ.get("WarningSummarys") else 120
    machines = call(client, cap, mode, "DescribeWarningMachines",
                    M.DescribeWarningMachinesRequest(risk_id=risk_id, cluster_id=c, lang="en"),
                    require_nonempty="WarningMachines")
    uuid = machines["WarningMachines"][0]["Uuid"] if machines and machines.get("WarningMachines") else ""
    warnings = call(client, cap, mode, "DescribeCheckWarnings",
                    M.DescribeCheckWarningsRequest(risk_id=risk_id, uuid=uuid, lang="en"),
                    require_nonempty="CheckWarnings")
    if warnings and warnings.get("CheckWarnings"):
        w = warnings["CheckWarnings"][0]
        call(client, cap, mode, "DescribeCheckWarningDetail",
             M.DescribeCheckWarningDetailRequest(check_warning_id=w["CheckWarningId"], lang="en"),
             require_nonempty="CheckDetailColumns")
        call(client, cap, mode, "DescribeCheckWarningDetail",
             M.DescribeCheckWarningDetailRequest(uuid=w["Uuid"], check_id=w["CheckId"], lang="en"))
    call(client, cap, mode, "GetClusterCheckItemWarningStatistics",
         M.GetClusterCheckItemWarningStatisticsRequest(cluster_id=c))
    call(client, cap, mode, "ListInterceptionHistory",
         M.ListInterceptionHistoryRequest(cluster_id=c, start_time=0, end_time=int(time.time() * 1000) + 60000,
                                          interception_types=[1, 2], current_page=1, page_size=50),
         require_nonempty="InterceptionHistoryList")
    call(client, cap, mode, "GetInterceptionSummary",
         M.GetInterceptionSummaryRequest(cluster_id=c, exclude_cluster_types=["Ask"]))
    call(client, cap, mode, "ListClusterInterceptionConfig",
         M.ListClusterInterceptionConfigRequest(current_page=1, page_size=20),
         require_nonempty="ClusterConfigList")
    run_rules(client, cap, mode, c)


def run_details(client, cap, mode, alert):
    """The two detail actions for one listed alert, chained by its Id and AlarmUniqueInfo."""
    label = "%s details" % mode
    call(client, cap, mode, "DescribeSuspEventDetail",
         M.DescribeSuspEventDetailRequest(suspicious_event_id=alert["Id"], from_="sas", lang="en"),
         require_nonempty="Details")
    d = typed(cap)
    if d is not None:
        expect(label, "Id", d.id, alert["Id"])
        expect(label, "EventStatus (a string here)", d.event_status, str(alert["EventStatus"]))
        expect(label, "EventName", d.event_name, alert["AlarmEventNameDisplay"])
        expect(label, "AlarmUniqueInfo", d.alarm_unique_info, alert["AlarmUniqueInfo"])
        expect(label, "Details[].Value", [x.value for x in d.details], [x["Value"] for x in alert["Details"]])
        expect(label, "Details[].NameDisplay", [x.name_display for x in d.details],
               [x["NameDisplay"] for x in alert["Details"]])
    raw = call(client, cap, mode, "DescribeAlarmEventDetail",
               M.DescribeAlarmEventDetailRequest(alarm_unique_info=alert["AlarmUniqueInfo"], from_="sas",
                                                 lang="en"),
               require_nonempty="Data")
    d = typed(cap)
    if raw and d is not None and d.data is not None:
        data = d.data
        expect(label, "Data.AlarmUniqueInfo", data.alarm_unique_info, alert["AlarmUniqueInfo"])
        expect(label, "Data.K8sClusterId", data.k_8s_cluster_id, alert["K8sClusterId"])
        expect(label, "Data.K8sPodName", data.k_8s_pod_name, alert["K8sPodName"])
        expect(label, "Data.ContainerId", data.container_id, alert["ContainerId"])
        expect(label, "Data.EndTime", data.end_time, alert["LastTimeStamp"])
        causes = data.cause_details or []
        if not causes or not all(g.key and g.value and g.value[0].name and g.value[0].value for g in causes):
            fail("%s: CauseDetails not decoded: %r" % (label, raw["Data"].get("CauseDetails")))
        elif causes[0].key != "Process chain" and causes[0].key != "Container":
            fail("%s: CauseDetails starts with %r" % (label, causes[0].key))


def run_rules(client, cap, mode, cluster):
    """ListInterceptionRulePage: every rule, then each firewall alert's rule found by its id."""
    label = "%s rules" % mode
    call(client, cap, mode, "ListInterceptionRulePage",
         M.ListInterceptionRulePageRequest(cluster_id=cluster, current_page=1, page_size=20),
         require_nonempty="InterceptionRuleList")
    page = typed(cap)
    if page is None:
        return
    expect(label, "PageInfo.CurrentPage", page.page_info.current_page, 1)
    expect(label, "PageInfo.TotalCount", page.page_info.total_count, len(page.interception_rule_list))
    for rule in page.interception_rule_list:
        if rule.rule_switch not in (0, 1) or not rule.dst_target.ports or not rule.src_target.target_name:
            fail("%s: rule %r not decoded" % (label, rule.to_map()))
    orders = [r.order_index for r in page.interception_rule_list]
    expect(label, "OrderIndex order", orders, sorted(orders))
    first = page.interception_rule_list[0]
    call(client, cap, mode, "ListInterceptionRulePage",
         M.ListInterceptionRulePageRequest(cluster_id=cluster, current_page=1, page_size=20,
                                           criteria_type="RULE_NAME", criteria=first.rule_name.upper()),
         require_nonempty="InterceptionRuleList")
    if typed(cap) is not None:
        expect(label, "RULE_NAME search", [r.rule_id for r in typed(cap).interception_rule_list], [first.rule_id])


def row(name, value):
    return {"NameDisplay": name, "Type": "text", "Value": value, "ValueDisplay": value}


def new_alert(sim, cluster):
    """A pending alert whose details offer every operation (whitelist fields included)."""
    fields = {"EventStatus": 1, "Details": [
        row("Command line", "/bin/bash -i"), row("Parent process", "runc:[2:INIT]"),
        row("Remote address", "203.0.113.9:4444"), row("Process ID", "4242")]}
    return sim.control("POST", "/_sim/findings", {"domain": "alert", "cluster_id": cluster, "fields": fields})["Id"]


def expect(label, what, got, want):
    if got != want:
        fail("%s: %s is %r, expected %r" % (label, what, got, want))


def rule_page(client, cap, mode, cluster, rule_id):
    """The rule `rule_id` as ListInterceptionRulePage (CriteriaType ID) decodes it, or None."""
    call(client, cap, mode, "ListInterceptionRulePage",
         M.ListInterceptionRulePageRequest(cluster_id=cluster, current_page=1, page_size=10,
                                           criteria_type="ID", criteria=str(rule_id)))
    page = typed(cap)
    rules = page.interception_rule_list if page is not None else []
    return rules[0] if len(rules) == 1 else None


def run_rule_switch(port, mode, ak, secret, token, v1, sim, cluster):
    """ModifyInterceptionRuleSwitch turns a firewall alert's rule off and on again: the next
    ListInterceptionRulePage shows each change, and the calls are in the handling log."""
    client, cap = make_client(port, ak, secret, token, v1)
    label = "%s rule switch" % mode
    fw = [r for r in sim.control("GET", "/_sim/findings/firewall") if r["ClusterId"] == cluster]
    if not fw:
        fail("%s: no firewall alert on %s" % (label, cluster))
        return
    rule_id = fw[0]["RuleId"]
    before = rule_page(client, cap, mode, cluster, rule_id)
    if before is None:
        fail("%s: the rule %s of firewall alert %s is not listed" % (label, rule_id, fw[0]["Id"]))
        return
    expect(label, "RuleName", before.rule_name, fw[0]["RuleName"])
    for switch in (0, 1):
        call(client, cap, mode, "ModifyInterceptionRuleSwitch",
             M.ModifyInterceptionRuleSwitchRequest(cluster_id=cluster, rule_ids=str(rule_id), rule_switch=switch))
        after = rule_page(client, cap, mode, cluster, rule_id)
        expect(label, "RuleSwitch after setting %d" % switch, after.rule_switch if after else None, switch)
    logged = [c for c in sim.control("GET", "/_sim/handling")["calls"]
              if c["action"] == "ModifyInterceptionRuleSwitch" and c["access_key_id"] == ak]
    expect(label, "last logged switch call", logged[-1]["params"] if logged else None,
           {"ClusterId": cluster, "RuleIds": str(rule_id), "RuleSwitch": "1"})


def run_handling(port, mode, ak, secret, token, v1, sim, cluster):
    """The handling actions through the typed SDK methods; each change checked in the world."""
    run_rule_switch(port, mode, ak, secret, token, v1, sim, cluster)
    client, cap = make_client(port, ak, secret, token, v1)
    a, b = new_alert(sim, cluster), new_alert(sim, cluster)
    label = "%s handling" % mode
    ops = call(client, cap, mode, "DescribeSecurityEventOperations",
               M.DescribeSecurityEventOperationsRequest(security_event_id=a, lang="en"),
               require_nonempty="SecurityEventOperationsResponse")
    marks = [f for o in (ops or {}).get("SecurityEventOperationsResponse", [])
             if o["OperationCode"] == "advance_mark_mis_info" for f in o["MarkField"]]
    if not marks:
        fail("%s: no MarkField offered for the whitelist" % label)
        return
    rule = {"field": marks[0]["FiledName"], "operate": "contains",
            "fieldValue": marks[0]["MarkMisValue"], "uuid": "part"}
    h = call(client, cap, mode, "HandleSecurityEvents",
             M.HandleSecurityEventsRequest(operation_code="advance_mark_mis_info", security_event_ids=[str(a)],
                                           mark_miss_param=json.dumps(rule), remark="sdk check"),
             require_nonempty="HandleSecurityEventsResponse")
    if not h:
        return
    task = h["HandleSecurityEventsResponse"]["TaskId"]
    first = call(client, cap, mode, "DescribeSecurityEventOperationStatus",
                 M.DescribeSecurityEventOperationStatusRequest(task_id=task))
    done = call(client, cap, mode, "DescribeSecurityEventOperationStatus",
                M.DescribeSecurityEventOperationStatusRequest(task_id=task),
                require_nonempty="SecurityEventOperationStatusResponse")
    if first and done:
        expect(label, "first TaskStatus", first["SecurityEventOperationStatusResponse"]["TaskStatus"], "Processing")
        expect(label, "final TaskStatus", done["SecurityEventOperationStatusResponse"]["TaskStatus"], "Success")
    expect(label, "whitelisted EventStatus", sim.control("GET", "/_sim/findings/alert/%d" % a)["EventStatus"], 8)
    # One task, two events: the whitelisted one cannot be ignored; followed by its events.
    call(client, cap, mode, "HandleSecurityEvents",
         M.HandleSecurityEventsRequest(operation_code="ignore", security_event_ids=[str(a), str(b)]))
    ids = [str(a), str(b)]
    call(client, cap, mode, "DescribeSecurityEventOperationStatus",
         M.DescribeSecurityEventOperationStatusRequest(security_event_ids=ids))
    mixed = call(client, cap, mode, "DescribeSecurityEventOperationStatus",
                 M.DescribeSecurityEventOperationStatusRequest(security_event_ids=ids))
    if mixed:
        got = [(e["SecurityEventId"], e["Status"], e["ErrorCode"])
               for e in mixed["SecurityEventOperationStatusResponse"]["SecurityEventOperationStatuses"]]
        expect(label, "per-event statuses", got,
               [(str(a), "Failed", "EventNotSupportOperation"), (str(b), "Success", "Success")])
    expect(label, "ignored EventStatus", sim.control("GET", "/_sim/findings/alert/%d" % b)["EventStatus"], 2)
    call(client, cap, mode, "OperationCancelIgnoreSuspEvent",
         M.OperationCancelIgnoreSuspEventRequest(security_event_ids=[b], remark="sdk check"))
    expect(label, "restored EventStatus", sim.control("GET", "/_sim/findings/alert/%d" % b)["EventStatus"], 1)

    vuln = next((v for v in sim.control("GET", "/_sim/findings/vuln") if v["Type"] == "cve" and v["Status"] == 1), None)
    if vuln is None:
        fail("%s: no open cve vulnerability" % label)
    else:
        info = json.dumps([{"name": vuln["Name"], "uuid": vuln["Uuid"], "tag": "oval"}])
        path = "/_sim/findings/vuln/%d" % vuln["PrimaryId"]
        call(client, cap, mode, "ModifyOperateVul",
             M.ModifyOperateVulRequest(type="cve", operate_type="vul_ignore", info=info, reason="sdk check", from_="sas"))
        expect(label, "ignored vuln Status", sim.control("GET", path)["Status"], 10)
        call(client, cap, mode, "ModifyOperateVul",
             M.ModifyOperateVulRequest(type="cve", operate_type="vul_undo_ignore", info=info, from_="sas"))
        expect(label, "restored vuln Status", sim.control("GET", path)["Status"], 1)

    warning = next((w for w in sim.control("GET", "/_sim/findings/baseline") if w["Status"] == 1), None)
    if warning is None:
        fail("%s: no failing baseline warning" % label)
    else:
        path = "/_sim/findings/baseline/%d" % warning["CheckWarningId"]
        call(client, cap, mode, "IgnoreHcCheckWarnings",
             M.IgnoreHcCheckWarningsRequest(type=1, check_warning_ids=str(warning["CheckWarningId"]),
                                            reason="sdk check"))
        expect(label, "ignored warning Status", sim.control("GET", path)["Status"], 6)
        call(client, cap, mode, "IgnoreHcCheckWarnings",
             M.IgnoreHcCheckWarningsRequest(type=2, check_warning_ids=str(warning["CheckWarningId"])))
        expect(label, "restored warning Status", sim.control("GET", path)["Status"], 1)
        call(client, cap, mode, "ValidateHcWarnings",
             M.ValidateHcWarningsRequest(risk_ids=str(warning["RiskId"]), check_ids=str(warning["CheckId"]),
                                         uuids=warning["Uuid"]))
        expect(label, "verified warning Status", sim.control("GET", path)["Status"], 3)


def sdk_error(fn):
    """Runs fn and returns (exception, code, retry_after) of the SDK error it raises."""
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        inner = getattr(e, "inner_exception", None) or e
        return inner, getattr(inner, "code", None), getattr(inner, "retry_after", None)
    return None, None, None


def check_errors(port, sim, ak, secret, cluster):
    client0, _ = make_client(port, ak, secret)
    bad, _ = make_client(port, ak, secret + "-wrong")
    e, code, _ = sdk_error(lambda: bad.get_cluster_susp_event_statistics(
        M.GetClusterSuspEventStatisticsRequest(cluster_id=cluster)))
    if code != "SignatureDoesNotMatch":
        fail("wrong secret: expected SignatureDoesNotMatch from the SDK, got %r (%s)" % (code, e))
    else:
        print("ok   SDK reads SignatureDoesNotMatch")
    bad1, _ = make_client(port, ak, secret + "-wrong", v1=True)
    e, code, _ = sdk_error(lambda: bad1.get_cluster_susp_event_statistics(
        M.GetClusterSuspEventStatisticsRequest(cluster_id=cluster)))
    if code != "SignatureDoesNotMatch" or "server string to sign is:" not in str(e):
        fail("V1 wrong secret: expected SignatureDoesNotMatch with the string to sign, got %r (%s)" % (code, e))
    else:
        print("ok   SDK reads V1 SignatureDoesNotMatch")
    for what, fn, want in [
        ("unknown SuspiciousEventId", lambda: client0.describe_susp_event_detail(
            M.DescribeSuspEventDetailRequest(suspicious_event_id=1, from_="sas")), "SecurityEventNotExists"),
        ("unknown AlarmUniqueInfo", lambda: client0.describe_alarm_event_detail(
            M.DescribeAlarmEventDetailRequest(alarm_unique_info="no-such-alarm", from_="sas")), "InvalidParameter"),
        ("unknown rule", lambda: client0.modify_interception_rule_switch(
            M.ModifyInterceptionRuleSwitchRequest(cluster_id=cluster, rule_ids="1", rule_switch=0)),
         "InvalidParameter"),
        ("unknown cluster", lambda: client0.modify_interception_rule_switch(
            M.ModifyInterceptionRuleSwitchRequest(cluster_id="c0000000000000000", rule_ids="1", rule_switch=0)),
         "InvalidParameter"),
        ("rule page without its page", lambda: client0.list_interception_rule_page(
            M.ListInterceptionRulePageRequest(cluster_id=cluster)), "MissingParameter"),
    ]:
        e, code, _ = sdk_error(fn)
        if code != want or type(e).__name__ != "ClientException":
            fail("%s: expected ClientException %s, got %s %r (%s)" % (what, want, type(e).__name__, code, e))
        else:
            print("ok   SDK reads %s for %s" % (code, what))
    sim.control("POST", "/_sim/faults", {"kind": "throttling", "action": "DescribeVulList",
                                         "retry_after_ms": 1500})
    client, _ = make_client(port, ak, secret)
    e, code, retry = sdk_error(lambda: client.describe_vul_list(M.DescribeVulListRequest(type="cve")))
    if code != "Throttling.User" or type(e).__name__ != "ThrottlingException" or not retry:
        fail("throttling: expected ThrottlingException Throttling.User with retry_after, got %s %r %r (%s)"
             % (type(e).__name__, code, retry, e))
    else:
        print("ok   SDK raises ThrottlingException (retry_after=%r)" % retry)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--ak", default="sasrelay-sim")
    ap.add_argument("--secret", default="sasrelay-sim-secret")
    args = ap.parse_args()
    sim = Sim(args.port)
    clusters = sim.control("GET", "/_sim/clusters")
    cluster = clusters[0]["cluster_id"]
    # An STS key with a token valid for an hour, added through the control endpoint.
    sts = {"access_key_id": "STS.sdk-compat", "access_key_secret": "sts-secret",
           "security_token": "CAIS-sdk-compat-token+/=", "expires_at_ms": int(time.time() * 1000) + 3600000}
    sim.control("POST", "/_sim/credentials", sts)
    modes = [
        ("v3", args.ak, args.secret, None, False),
        ("v1", args.ak, args.secret, None, True),
        ("v3+sts", sts["access_key_id"], sts["access_key_secret"], sts["security_token"], False),
        ("v1+sts", sts["access_key_id"], sts["access_key_secret"], sts["security_token"], True),
    ]
    for mode, ak, secret, token, v1 in modes:
        run_mode(args.port, mode, ak, secret, token, v1, cluster)
        run_handling(args.port, mode, ak, secret, token, v1, sim, cluster)
    check_errors(args.port, sim, args.ak, args.secret, cluster)
    if FAILURES:
        print("\n%d failure(s)" % len(FAILURES))
        sys.exit(1)
    print("\nall SDK checks passed")


if __name__ == "__main__":
    main()
