"""XML-DSig and JWS signing and verification, trust store, signer binding."""
