"""The national platform: its REST protocol, client, records and the delivery adapter over them."""
