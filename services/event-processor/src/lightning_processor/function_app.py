"""Azure Functions app: the Service Bus trigger and the timer sweep (docs/processor.md)."""

from __future__ import annotations

import azure.functions as func

from lightning_processor import functions

#: Every minute, at second 0 (NCRONTAB: second minute hour day month weekday).
SWEEP_SCHEDULE = "0 * * * * *"

process = functions.load()
app = func.FunctionApp()


@app.function_name("process_event")
@app.service_bus_topic_trigger(
    arg_name="message",
    connection=functions.CONNECTION,
    topic_name=process.topic,
    subscription_name=process.subscription,
)
async def process_event(message: func.ServiceBusMessage) -> None:
    """Returning lets the host complete the message; raising makes it abandon it."""
    await process(message.get_body(), message.message_id)


@app.function_name("republish_stale")
@app.timer_trigger(arg_name="timer", schedule=SWEEP_SCHEDULE)
async def republish_stale(timer: func.TimerRequest) -> None:  # noqa: ARG001  (the binding)
    """Raising fails this run only; the next minute sweeps again."""
    await process.sweep()
