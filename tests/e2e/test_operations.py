"""What an operator and a load balancer see: /healthz, /readyz and /metrics, in HTTP mode on the serving
port (`serve --port N` or $PORT) and in Socket Mode on METRICS_PORT."""

from __future__ import annotations

import json
import re
import signal
import urllib.error
import urllib.request

from tests.e2e.harness import BridgeProcess, eventually, free_port, run_once
from tests.e2e.replies import wait_replies
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def ready(base: str) -> tuple[int, dict]:
    status, body = get(f"{base}/readyz")
    return status, json.loads(body)


def sample(text: str, name: str, labels: str = "") -> float:
    """The value of one sample of the Prometheus text exposition (0 when absent)."""
    pattern = rf"^{re.escape(name)}{re.escape(labels)} (\S+)$"
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_http_mode_reports_ready_and_counts_turns(slack: SlackEmulator, model_api: OpenAIEmulator,
                                                  bridge_factory) -> None:
    port = free_port()
    bridge = bridge_factory(command="serve", env={"PORT": str(port)})
    slack.set_events_url(f"{bridge.http_url}/slack/events")
    status, answer = ready(bridge.http_url)
    assert status == 200 and answer["ready"] is True
    assert answer["checks"] == {"database": True, "slack": True, "model": True, "accepting": True}
    slack.fail_next("chat.postMessage", error="ratelimited", status=429, retry_after=1)
    slack.user_says("general", "alice", "count me")
    wait_replies(slack, "general")
    status, text = get(f"{bridge.http_url}/metrics")
    assert status == 200
    assert sample(text, "bridge_turns_total", '{outcome="answered"}') == 1
    assert sample(text, "bridge_event_to_model_request_seconds_count") == 1
    assert sample(text, "bridge_model_done_to_slack_seconds_count") == 1
    assert sample(text, "bridge_queue_depth") == 0
    assert sample(text, "bridge_slack_rate_limited_total", '{method="chat.postMessage"}') == 1


def test_ready_follows_the_slack_token_and_the_model_account(slack: SlackEmulator, model_api: OpenAIEmulator,
                                                             bridge_factory) -> None:
    port = free_port()
    bridge = bridge_factory(command="serve", env={"PORT": str(port)})
    slack.set_events_url(f"{bridge.http_url}/slack/events")
    slack.revoke_bot_token()
    slack.user_says("general", "alice", "while the token is revoked")
    status, answer = eventually(lambda: (r := ready(bridge.http_url))[0] == 503 and r, timeout=30,
                                message="not ready while Slack refuses the token")
    assert answer["checks"]["slack"] is False and "token_revoked" in answer["reasons"]["slack"]
    status, text = get(f"{bridge.http_url}/metrics")
    assert sample(text, "bridge_queue_depth") >= 0 and sample(text, "bridge_ready") == 0
    slack.restore_bot_token()
    wait_replies(slack, "general", timeout=60)
    assert ready(bridge.http_url)[0] == 200

    model_api.fail_next(401, code="invalid_api_key", message="Incorrect API key provided", times=10)
    slack.user_says("general", "bob", "with a bad key")
    status, answer = eventually(lambda: (r := ready(bridge.http_url))[0] == 503 and r, timeout=30,
                                message="not ready while the model service refuses the key")
    assert answer["checks"]["model"] is False and "invalid_api_key" in answer["reasons"]["model"]
    model_api.faults.clear()
    slack.user_says("general", "bob", "and again")  # the next message tries again, and works
    wait_replies(slack, "general", 2, timeout=60)
    eventually(lambda: ready(bridge.http_url)[0] == 200, timeout=30, message="ready again")
    text = get(f"{bridge.http_url}/metrics")[1]
    assert sample(text, "bridge_turn_failures_total", '{kind="account"}') >= 1


def test_not_ready_while_draining_on_sigterm(slack: SlackEmulator, model_api: OpenAIEmulator,
                                              bridge_factory) -> None:
    port = free_port()
    bridge = bridge_factory(command="serve", env={"PORT": str(port)})
    slack.set_events_url(f"{bridge.http_url}/slack/events")
    model_api.delay_next(4.0, path="/v1/responses")  # a turn in flight when SIGTERM comes
    slack.user_says("general", "alice", "slow one")
    eventually(lambda: model_api.requests("/v1/responses"), timeout=20, message="the model request, held")
    bridge.process.send_signal(signal.SIGTERM)
    status, answer = eventually(lambda: (r := ready(bridge.http_url))[0] == 503 and r, timeout=5,
                                message="not ready while draining")
    assert answer["checks"]["accepting"] is False
    assert bridge.stop() == 0
    wait_replies(slack, "general")  # the turn in flight was finished


def test_serve_port_flag_overrides_port(slack: SlackEmulator, model_api: OpenAIEmulator, bridge_factory) -> None:
    port, env_port = free_port(), free_port()
    bridge = bridge_factory(command="serve", env={"PORT": str(env_port)}, args=["--port", str(port)])
    assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
    assert f"listening on port {port}" in bridge.log
    try:
        get(f"http://127.0.0.1:{env_port}/healthz")
        raise AssertionError("the bridge listened on $PORT despite --port")
    except urllib.error.URLError:
        pass


def test_socket_mode_serves_operations_on_metrics_port(slack: SlackEmulator, model_api: OpenAIEmulator,
                                                       bridge_factory) -> None:
    port = free_port()
    bridge: BridgeProcess = bridge_factory(env={"METRICS_PORT": str(port)})
    base = f"http://127.0.0.1:{port}"
    status, answer = eventually(lambda: (r := ready(base))[0] == 200 and r, timeout=10, message="ready")
    assert answer["checks"]["socket_mode"] is True
    assert get(f"{base}/healthz")[0] == 200
    slack.user_says("general", "alice", "over Socket Mode")
    wait_replies(slack, "general")
    assert sample(get(f"{base}/metrics")[1], "bridge_turns_total", '{outcome="answered"}') == 1
    assert bridge.alive


def test_bad_ports_are_refused_with_exit_status_2(slack: SlackEmulator, model_api: OpenAIEmulator,
                                                  tmp_path) -> None:
    from tests.e2e.harness import bridge_env

    env = bridge_env(slack, model_api, tmp_path, {"METRICS_PORT": "http"})
    result = run_once(["run"], env, tmp_path)
    assert result.returncode == 2 and "METRICS_PORT must be a number" in result.stderr
    result = run_once(["serve", "--port", "99999"], bridge_env(slack, model_api, tmp_path), tmp_path)
    assert result.returncode == 2 and "--port" in result.stderr
