"""The national document exchange platform: protocol, client, simulator, southbound server."""
