"""The central relay hub: fleet hosts submit to it with their own credentials; it relays onward."""
