ALTER TABLE "execution_events" ADD COLUMN "published_at" timestamp with time zone;--> statement-breakpoint
-- Events stored before this migration were published (or given up on) by the old in-memory queue:
-- count them as published so that an upgrade does not republish history.
UPDATE "execution_events" SET "published_at" = "at" WHERE "published_at" IS NULL;--> statement-breakpoint
CREATE INDEX "execution_events_unpublished_idx" ON "execution_events" USING btree ("execution_id","seq") WHERE published_at is null;
