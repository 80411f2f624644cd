"""Pure translators between the OpenAI and native Seedance schemas, and native request checks."""
