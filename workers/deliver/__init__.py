"""Deliver: an event to every destination that wants it, once each, on its own schedule, under the operator's hand."""
