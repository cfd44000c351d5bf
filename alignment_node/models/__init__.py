"""AI model audits' models: the devnet's tiny byte-level language model (``lm``), its substitution variants
(``variants``) and the sentence-embedding model (``embed``). These need the ``models`` extra (torch, ...);
the core node never imports them."""
