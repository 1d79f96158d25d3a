"""What the tests of every package share: helpers, fakes, server backends and fixtures.

lightning_core itself never imports it; its modules import the test tools they need
(pytest, httpx, Playwright, the provider SDKs) themselves:

- `machine`: `require` a tool or server (skip locally, fail in CI, saying how to get it),
  `free_port`;
- `health`: `wait_until_healthy`, for a runtime started as a process (`invoke dev` and the
  benchmarks wait with it too);
- `runtime`: `start_runtime`, the runtime as a process hosting the services a test names;
- `fixtures`: the pytest plugin of settings, embedded providers, a service context, quick
  retries and recorded spans;
- `backends`: one pytest plugin per provider (shared servers, private ones for the fault
  suite); `stacks`: the plugin of the storage + bus combinations a whole system runs on;
- `browser`: the plugin of a headless Chromium; `clock`, `entra_fake`, `servicebus_fake`:
  stand-ins for time, Entra ID and Azure Service Bus.

A package's tests load the plugins they use from their conftest.py, e.g.
`pytest_plugins = ["lightning_core.testing.fixtures"]`.
"""
