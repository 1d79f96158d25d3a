"""Azure Functions entry (Python v2 model): the worker's handler behind a Service Bus trigger.

Thin on purpose; settlement, settings, poison messages and deployment are explained in
`lightning_processor.functions`. The host imports this module once per worker process to
index the app, which reads the settings and builds storage and the bus; bad settings fail
the import.
"""

from __future__ import annotations

import azure.functions as func

from lightning_processor import functions

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
