"""crypto_pulse producer: every Binance and Coinbase trade into Kinesis, with no gaps."""

__version__ = "0.1.0"
