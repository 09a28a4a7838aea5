"""The SMS workflow of seed 000: nodes as data (``nodes.py``) driven by one engine (``engine.py``)."""

from sessions_app.services.workflow.engine import SmsReply, WorkflowBusy, sms_message_handle, turn_apply
from sessions_app.services.workflow.nodes import HELP_TEXT, NODES

__all__ = ["HELP_TEXT", "NODES", "SmsReply", "WorkflowBusy", "sms_message_handle", "turn_apply"]
