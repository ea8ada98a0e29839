"""edXML (QCVN 102:2016) model, codecs, validation and builders."""
