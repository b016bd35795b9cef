"""Run-time: the run store, batch execution, the LangGraph executor and the Run object."""
