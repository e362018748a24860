-- Which node holds a job's lease, so a node shutting down gives back at once the jobs it
-- leased and never sent, instead of leaving them until their leases lapse.
ALTER TABLE notif_jobs ADD COLUMN lease_owner TEXT;
CREATE INDEX notif_jobs_lease_owner ON notif_jobs (lease_owner) WHERE lease_owner IS NOT NULL;
