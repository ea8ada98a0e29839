"""Data package: the edXML XSD and JSON Schema, the OpenAPI document and the SOAP WSDLs."""
