"""Local stand-ins for the outside world: AWS (moto server), the exchanges (simulator), and the
provisioning of streams and tables. Production code never imports this package."""
