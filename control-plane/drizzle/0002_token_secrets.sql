ALTER TABLE "api_tokens" ADD COLUMN "expires_at" timestamp with time zone;--> statement-breakpoint
CREATE INDEX "api_tokens_org_created_idx" ON "api_tokens" USING btree ("organisation_id","created_at","id");--> statement-breakpoint
-- Token prefixes used to keep 12 characters of each token. Keep only the `dray_` marker and 4 characters
-- of generated tokens; of a chosen token (DRAY_ADMIN_TOKEN, or anything without the marker) keep nothing.
UPDATE "api_tokens" SET "token_prefix" = CASE
  WHEN "name" <> 'bootstrap (DRAY_ADMIN_TOKEN)' AND left("token_prefix", 5) = 'dray_' THEN left("token_prefix", 9)
  ELSE '(chosen)'
END WHERE "token_prefix" <> '(chosen)';
