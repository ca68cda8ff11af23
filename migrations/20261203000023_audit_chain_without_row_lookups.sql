-- The chain no longer looks up each audit row it names. The foreign key made every chain
-- entry a lookup in the partitioned audit_logs (about a tenth of a millisecond each, most
-- of a batch's time); it never protected anything `audit verify` does not check itself
-- (an entry whose row is gone is reported as a deleted row). The archive job deletes the
-- entries of the rows it archives in the same statement instead of by cascade.
ALTER TABLE audit_log_chain DROP CONSTRAINT audit_log_chain_audit_fkey;
CREATE INDEX idx_audit_log_chain_audit ON audit_log_chain (audit_id, audit_timestamp);
