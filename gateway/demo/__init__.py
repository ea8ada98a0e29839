"""Demo tools: the demo setup, the demo PKI and the sample SOAP service (never production)."""
