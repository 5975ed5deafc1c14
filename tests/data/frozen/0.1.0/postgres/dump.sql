--
-- PostgreSQL database dump
--

\restrict bMUmfLQOiNKTsNq9cL1lY8EIKoHvjzN5C1TjSeWdPC5cQEUkC7798nCCj44DdV6

-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)
-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: sessionflow_event_position(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.sessionflow_event_position() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF NEW.position IS NULL THEN
        -- One transaction at a time from here to its commit: positions follow commit order.
        PERFORM pg_advisory_xact_lock(1936942450, 1);
        NEW.position := nextval('session_events_position_seq');
    END IF;
    RETURN NEW;
END
$$;


--
-- Name: sessionflow_notify_deadline(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.sessionflow_notify_deadline() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
    BEGIN
        PERFORM pg_notify('sessionflow_deadline', NEW.due_at::text);
        RETURN NULL;
    END;
    $$;


--
-- Name: sessionflow_notify_events(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.sessionflow_notify_events() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
    BEGIN
        PERFORM pg_notify('sessionflow_events', '');
        RETURN NULL;
    END;
    $$;


SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: alembic_version; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.alembic_version (
    version_num character varying(32) NOT NULL
);


--
-- Name: session_events; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.session_events (
    record_id uuid NOT NULL,
    session_id uuid NOT NULL,
    version integer NOT NULL,
    event character varying(32) NOT NULL,
    source_state character varying(64),
    target_state character varying(64) NOT NULL,
    performer_id character varying(256) NOT NULL,
    "timestamp" bigint NOT NULL,
    payload jsonb NOT NULL,
    "position" bigint
);


--
-- Name: session_events_position_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.session_events_position_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: session_events_position_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.session_events_position_seq OWNED BY public.session_events."position";


--
-- Name: sessionflow_consumers; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.sessionflow_consumers (
    name character varying(256) NOT NULL,
    "position" bigint NOT NULL,
    updated_at bigint NOT NULL
);


--
-- Name: sessions; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.sessions (
    id uuid NOT NULL,
    status character varying(64) NOT NULL,
    version integer NOT NULL,
    user_id character varying(256),
    workspace_id character varying(256),
    module_name character varying(256),
    total_files integer NOT NULL,
    processed_files integer NOT NULL,
    failed_files integer NOT NULL,
    current_file text,
    ttl_seconds double precision NOT NULL,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    expires_at bigint,
    max_expires_at bigint,
    closed_at bigint,
    closed_by character varying(256),
    failure_reason text,
    deleted_at bigint,
    due_at bigint,
    data jsonb NOT NULL,
    lifecycle character varying(128) DEFAULT 'session'::character varying NOT NULL,
    lifecycle_version integer DEFAULT 1 NOT NULL
);


--
-- Data for Name: alembic_version; Type: TABLE DATA; Schema: public; Owner: -
--

COPY public.alembic_version (version_num) FROM stdin;
0006
\.


--
-- Data for Name: session_events; Type: TABLE DATA; Schema: public; Owner: -
--

COPY public.session_events (record_id, session_id, version, event, source_state, target_state, performer_id, "timestamp", payload, "position") FROM stdin;
9f755ec7-2772-45e0-83f4-be74c6b985d4	c32b6ff6-8129-48f0-9797-cfb8666758c5	1	created	\N	pending	ana	1893456004000	{"user_id": "ana", "metadata": {}, "expires_at": "2030-03-02T00:00:04.000Z", "file_paths": ["big.csv"], "module_name": "auth", "ttl_seconds": 5184000.0, "workspace_id": "ws-1", "max_expires_at": null}	10
37114ac9-593b-4084-a9f1-0090a60b49a1	c32b6ff6-8129-48f0-9797-cfb8666758c5	2	started	pending	in_progress	ana	1893456005000	{}	11
f5e3703b-9d58-4331-ab50-ded274890a18	c55fbc94-10c5-493a-8c5b-56036b5c40c5	1	created	\N	pending	alice	1896912305000	{"user_id": "alice", "metadata": {"tags": ["x", "y"], "nested": {"deep": [1, {"k": true}], "none": null, "ratio": 1.5}, "ticket": "T-1"}, "expires_at": "2030-02-17T00:05:05.000Z", "file_paths": ["src/a.py", "src/b.py"], "module_name": "auth", "ttl_seconds": 604800.0, "workspace_id": "ws-1", "max_expires_at": null}	13
071e8241-1e94-432f-a852-a0839a8ae40d	ff86fd95-6152-449a-90b2-492820be7cca	1	created	\N	pending	bob	1896912306000	{"user_id": "bob", "metadata": {}, "expires_at": "2030-02-17T00:05:06.000Z", "file_paths": [], "module_name": "billing", "ttl_seconds": 604800.0, "workspace_id": "ws-2", "max_expires_at": null}	14
0cfa6fe4-a6c9-4b1e-a1f0-f94d7690a7c2	ff86fd95-6152-449a-90b2-492820be7cca	2	note_added	pending	pending	bob	1896912307000	{"status": "queued", "file_path": "inbox", "memory_id": null}	15
8233b5f4-99dc-4750-8eea-ad451307e358	ec8fd9cb-7281-4090-8f35-a942c9fbc057	1	created	\N	pending	cron	1896912307000	{"user_id": null, "metadata": {"title": "Grüße ✓ — ünïcode"}, "expires_at": "2030-02-17T00:05:07.000Z", "file_paths": [], "module_name": null, "ttl_seconds": 604800.0, "workspace_id": null, "max_expires_at": null}	16
66438a5b-4ecd-4e7a-a0d2-e1ec08c24fe9	99ae5b6d-0dee-4176-9a76-353571756fca	1	created	\N	pending	alice	1896912308000	{"user_id": "alice", "metadata": {}, "expires_at": "2030-02-17T00:05:08.000Z", "file_paths": ["a.py", "b.py", "c.py"], "module_name": "auth", "ttl_seconds": 604800.0, "workspace_id": "ws-1", "max_expires_at": null}	17
3a03302b-c393-416b-b632-026878a650be	99ae5b6d-0dee-4176-9a76-353571756fca	2	started	pending	in_progress	alice	1896912309000	{}	18
0c3ac444-8f49-489e-89ac-fdf02b176077	99ae5b6d-0dee-4176-9a76-353571756fca	3	file_recorded	in_progress	in_progress	alice	1896912309000	{"path": "a.py", "error": null}	19
83857847-9502-44f2-ba52-7d3ad53529a1	99ae5b6d-0dee-4176-9a76-353571756fca	4	file_recorded	in_progress	in_progress	alice	1896912309000	{"path": "b.py", "error": "parse error"}	20
91139d84-bbd6-46c1-88e5-2b78ba3e5f1c	99ae5b6d-0dee-4176-9a76-353571756fca	5	updated	in_progress	in_progress	alice	1896912309000	{"current_file": "c.py"}	21
d7a638c0-197d-4056-a85c-192db152c813	99ae5b6d-0dee-4176-9a76-353571756fca	6	note_added	in_progress	in_progress	alice	1896912309000	{"status": "stored", "file_path": "a.py", "memory_id": "m-1"}	22
b3f6f4da-8b5a-4932-9470-d318915f6894	99ae5b6d-0dee-4176-9a76-353571756fca	7	touched	in_progress	in_progress	alice	1896912310000	{"expires_at": "2030-02-17T00:05:10.000Z"}	23
83c2ba5a-9595-41ab-aa0e-1e7eeaacc2ea	c9466c3a-26f4-43d9-8796-39e8cfdcec63	1	created	\N	pending	carol	1896912310000	{"user_id": "carol", "metadata": {}, "expires_at": "2030-02-17T00:05:10.000Z", "file_paths": ["one.txt"], "module_name": null, "ttl_seconds": 604800.0, "workspace_id": "ws-2", "max_expires_at": null}	24
91cd43a2-cc4b-4bd9-a410-ff75eaa229aa	c9466c3a-26f4-43d9-8796-39e8cfdcec63	2	started	pending	in_progress	carol	1896912310000	{}	25
be73ebff-fd3e-4ace-a2ff-29fc6eba926e	c9466c3a-26f4-43d9-8796-39e8cfdcec63	3	updated	in_progress	in_progress	carol	1896912311000	{"metadata": {"owner": "carol", "stage": 2}}	26
6f7354ac-ffb4-4630-8f71-abbd9320afa4	b2262051-70e3-420c-9182-7866de226fcb	1	created	\N	pending	bob	1896912311000	{"user_id": "bob", "metadata": {}, "expires_at": "2030-02-17T00:05:11.000Z", "file_paths": [], "module_name": "billing", "ttl_seconds": 604800.0, "workspace_id": "ws-1", "max_expires_at": "2030-02-20T00:05:11.000Z"}	27
da32f555-39d9-47c5-b9f4-1c445db9196c	b2262051-70e3-420c-9182-7866de226fcb	2	started	pending	in_progress	bob	1896912312000	{"expires_at": "2030-02-17T00:05:12.000Z"}	28
3485221e-8cc5-4b3d-a260-3ed8f215a16e	b2262051-70e3-420c-9182-7866de226fcb	3	touched	in_progress	in_progress	bob	1896912313000	{"expires_at": "2030-02-17T00:05:13.000Z"}	29
7ed1952a-7fec-42da-9768-2f4f7af48b8b	7dd81444-06ef-4a82-98b0-3987fc8b7ece	1	created	\N	pending	alice	1896912313000	{"user_id": "alice", "metadata": {}, "expires_at": "2030-02-17T00:05:13.000Z", "file_paths": ["r1.csv", "r2.csv"], "module_name": "billing", "ttl_seconds": 604800.0, "workspace_id": "ws-2", "max_expires_at": null}	30
7ddef52c-9367-4c57-8dc1-149f9e0de238	7dd81444-06ef-4a82-98b0-3987fc8b7ece	2	started	pending	in_progress	alice	1896912314000	{}	31
103d8dac-ba9f-493a-9b08-15bf3e31f026	7dd81444-06ef-4a82-98b0-3987fc8b7ece	3	file_recorded	in_progress	in_progress	alice	1896912314000	{"path": "r1.csv", "error": null}	32
860c8ba6-4cdd-46dd-80df-30ff3eaf518e	7dd81444-06ef-4a82-98b0-3987fc8b7ece	4	file_recorded	in_progress	in_progress	alice	1896912314000	{"path": "r2.csv", "error": "timeout"}	33
54cde6c0-2f67-45db-bb33-c23dd860cdb3	7dd81444-06ef-4a82-98b0-3987fc8b7ece	5	note_added	in_progress	in_progress	alice	1896912314000	{"status": "stored", "file_path": "r1.csv", "memory_id": "m-2"}	34
02845e06-0bfc-4e01-a663-cca6086ea0d4	7dd81444-06ef-4a82-98b0-3987fc8b7ece	6	note_added	in_progress	in_progress	alice	1896912314000	{"status": "skipped", "file_path": "r2.csv", "memory_id": null}	35
b736955e-9eed-42c2-bdfc-9f21eb1db239	7dd81444-06ef-4a82-98b0-3987fc8b7ece	7	completed	in_progress	completed	alice	1896912314000	{}	36
83654c8c-7c9c-4efe-8341-36dc1aad380c	a92b8636-0442-4b96-8e75-ca672e24c1d1	2	expired	pending	expired	system	1896912923000	{}	66
ad6f8556-5911-4185-84d0-6354de862eb7	0f1528c4-a131-4c20-b904-17bc2963bd3f	4	expired	in_progress	expired	system	1896912923000	{}	67
891733f7-0eee-4e20-8a33-e37ee6e32ea3	1012829f-cb49-44c1-8422-a8a42013c39d	1	created	\N	pending	bob	1896912314000	{"user_id": "bob", "metadata": {}, "expires_at": "2030-02-17T00:05:14.000Z", "file_paths": [], "module_name": "auth", "ttl_seconds": 604800.0, "workspace_id": "ws-1", "max_expires_at": null}	37
1412b1d3-f577-4b8f-9e36-87112706ba4f	1012829f-cb49-44c1-8422-a8a42013c39d	2	started	pending	in_progress	bob	1896912315000	{}	38
803023a0-545a-438e-ba2e-31cbd4d41764	1012829f-cb49-44c1-8422-a8a42013c39d	3	updated	in_progress	in_progress	bob	1896912315000	{"metadata": {"result": "ok"}}	39
68b347b2-8f11-4c79-be42-0f5d7db347da	1012829f-cb49-44c1-8422-a8a42013c39d	4	completed	in_progress	completed	bob	1896912315000	{}	40
30487e4b-6eca-470e-ba7f-5370a095ed90	dd1ed06e-2a5b-474b-9c0d-a033af549990	1	created	\N	pending	carol	1896912315000	{"user_id": "carol", "metadata": {}, "expires_at": "2030-02-17T00:05:15.000Z", "file_paths": [], "module_name": null, "ttl_seconds": 604800.0, "workspace_id": "ws-3", "max_expires_at": null}	41
9fcd191e-f02c-42fc-b22e-d40889d90b3c	dd1ed06e-2a5b-474b-9c0d-a033af549990	2	failed	pending	failed	carol	1896912316000	{"reason": "cancelled by user"}	42
1be02d42-43dc-422f-b56e-27d35112c76c	137b2a86-2c5e-4f51-aae1-491143116752	1	created	\N	pending	alice	1896912316000	{"user_id": "alice", "metadata": {}, "expires_at": "2030-02-17T00:05:16.000Z", "file_paths": ["z.py"], "module_name": "auth", "ttl_seconds": 604800.0, "workspace_id": "ws-1", "max_expires_at": null}	43
32c5fc25-f056-4b94-9a09-60f68bbe0b4e	137b2a86-2c5e-4f51-aae1-491143116752	2	started	pending	in_progress	alice	1896912317000	{}	44
28ebc6d8-378a-45ce-b4ce-9b20f137deb2	137b2a86-2c5e-4f51-aae1-491143116752	3	file_recorded	in_progress	in_progress	alice	1896912317000	{"path": "z.py", "error": "bad input"}	45
4ae39bac-de7e-4a66-9921-1b309a9489f5	137b2a86-2c5e-4f51-aae1-491143116752	4	failed	in_progress	failed	alice	1896912317000	{"reason": "bad input"}	46
7a636dce-347e-4c91-a0d3-aba1e62868fc	c8649700-f885-4d46-a5d5-920630f5ff9d	1	created	\N	pending	importer	1896912317000	{"user_id": "dave", "metadata": {}, "expires_at": "2030-02-17T00:05:17.000Z", "file_paths": [], "module_name": "import", "ttl_seconds": 604800.0, "workspace_id": "ws-3", "max_expires_at": null}	47
51afd688-1ce8-4115-9a62-ce88890690e5	760293a3-6d7b-4708-b572-e4d281d5e82f	1	created	\N	pending	importer	1896912317000	{"user_id": "dave", "metadata": {}, "expires_at": "2030-02-17T00:05:17.000Z", "file_paths": [], "module_name": null, "ttl_seconds": 604800.0, "workspace_id": "ws-3", "max_expires_at": null}	48
8752e28a-bc8a-4efd-b382-dece7c53cb3a	f52c28a5-0512-4bbd-96ae-3a6f77d9ca6b	1	created	\N	pending	importer	1896912317000	{"user_id": "erin", "metadata": {"batch": 1}, "expires_at": "2030-02-17T00:05:17.000Z", "file_paths": [], "module_name": null, "ttl_seconds": 604800.0, "workspace_id": "ws-3", "max_expires_at": null}	49
728210e6-e4bc-44ee-abd3-ad99253f3e6f	c8649700-f885-4d46-a5d5-920630f5ff9d	2	started	pending	in_progress	importer	1896912318000	{}	50
2775c1de-d350-44f8-8048-908ff8a7033e	760293a3-6d7b-4708-b572-e4d281d5e82f	2	started	pending	in_progress	importer	1896912318000	{}	51
e54dca0b-c9d8-4274-a0a6-78db17842ca7	c8649700-f885-4d46-a5d5-920630f5ff9d	3	completed	in_progress	completed	importer	1896912318000	{}	52
f481d575-ea93-4eea-bee4-d6b32a41790b	0e037c40-7af5-4118-85cf-2f7e0a96721c	1	created	\N	pending	frank	1896912318000	{"user_id": "frank", "metadata": {}, "expires_at": "2030-02-17T00:05:18.000Z", "file_paths": [], "module_name": "auth", "ttl_seconds": 604800.0, "workspace_id": "ws-4", "max_expires_at": null}	53
4fdcfc9f-2419-4f5e-98e8-c666efb92394	fbcce73a-2cd3-4467-b331-c3bef0291f88	1	created	\N	pending	frank	1896912318000	{"user_id": "frank", "metadata": {}, "expires_at": "2030-02-17T00:05:18.000Z", "file_paths": [], "module_name": "auth", "ttl_seconds": 604800.0, "workspace_id": "ws-4", "max_expires_at": null}	54
9cbb7c0f-ead1-46f5-b431-eea639b41f25	5d3eeb66-2a76-4d61-a24a-f7d514f81f7c	1	created	\N	pending	frank	1896912318000	{"user_id": "frank", "metadata": {}, "expires_at": "2030-02-17T00:05:18.000Z", "file_paths": [], "module_name": "auth", "ttl_seconds": 604800.0, "workspace_id": "ws-4", "max_expires_at": null}	55
e36f5d37-23a0-4da2-8d18-fa5b149ddc38	98311758-92a5-4dc9-bc3a-d6d2911e9b50	1	created	\N	pending	alice	1896912319000	{"user_id": "alice", "metadata": {}, "expires_at": "2030-02-17T00:05:19.000Z", "file_paths": [], "module_name": null, "ttl_seconds": 604800.0, "workspace_id": "ws-1", "max_expires_at": null}	56
9a3b5c1c-1845-497d-aeb3-0c4a2fa10b5a	98311758-92a5-4dc9-bc3a-d6d2911e9b50	2	deleted	pending	pending	alice	1896912320000	{}	57
96c55eaf-78df-475c-809d-eee333cb59c7	df1a4159-6341-4753-aa36-aa7b372db675	1	created	\N	pending	bob	1896912320000	{"user_id": "bob", "metadata": {}, "expires_at": "2030-02-17T00:05:20.000Z", "file_paths": [], "module_name": null, "ttl_seconds": 604800.0, "workspace_id": "ws-2", "max_expires_at": null}	58
c7835061-354c-4585-b65d-e8b66a3e22a0	df1a4159-6341-4753-aa36-aa7b372db675	2	started	pending	in_progress	bob	1896912321000	{}	59
56cea00c-7ac3-49cd-ac92-ae25bfa907dc	df1a4159-6341-4753-aa36-aa7b372db675	3	completed	in_progress	completed	bob	1896912321000	{}	60
f5282ee3-cc07-4203-b823-11727a3d5c83	df1a4159-6341-4753-aa36-aa7b372db675	4	deleted	completed	completed	bob	1896912321000	{}	61
063d3cd9-6e0f-40c9-80f1-6bc4a5e2cd7f	a92b8636-0442-4b96-8e75-ca672e24c1d1	1	created	\N	pending	alice	1896912321000	{"user_id": "alice", "metadata": {}, "expires_at": "2030-02-10T00:15:21.000Z", "file_paths": [], "module_name": null, "ttl_seconds": 600.0, "workspace_id": "ws-2", "max_expires_at": null}	62
531e809b-eb87-4871-b09d-e1672ce39566	0f1528c4-a131-4c20-b904-17bc2963bd3f	1	created	\N	pending	bob	1896912322000	{"user_id": "bob", "metadata": {}, "expires_at": "2030-02-10T00:15:22.000Z", "file_paths": ["q.py"], "module_name": "auth", "ttl_seconds": 600.0, "workspace_id": "ws-1", "max_expires_at": null}	63
79f2c2e4-30a6-4bdc-aa6f-d403dfdd7979	0f1528c4-a131-4c20-b904-17bc2963bd3f	2	started	pending	in_progress	bob	1896912323000	{}	64
cefc366d-07ca-4061-b3d1-d5503e9aa5e6	0f1528c4-a131-4c20-b904-17bc2963bd3f	3	file_recorded	in_progress	in_progress	bob	1896912323000	{"path": "q.py", "error": null}	65
d358381a-7008-44ec-bd98-ec0f85a523a0	121c2bb7-b8fa-49d9-b83a-668508742e5e	1	created	\N	draft	alice	1896912923000	{"user_id": "alice", "metadata": {"title": "Old spec", "author": "alice"}, "lifecycle": "review", "expires_at": "2030-02-17T00:15:23.000Z", "file_paths": [], "module_name": null, "ttl_seconds": 604800.0, "workspace_id": "ws-5", "max_expires_at": null, "lifecycle_version": 1}	68
03c02b3f-7a63-4437-8407-d1b048f0f758	121c2bb7-b8fa-49d9-b83a-668508742e5e	2	submitted	draft	in_review	alice	1896912924000	{"expires_at": "2030-02-10T02:15:24.000Z"}	69
655ae436-fabd-47a8-8d5e-197d467fd9f0	3e337f7e-e65f-4614-b876-db0344f37260	1	created	\N	draft	alice	1896920124000	{"user_id": "alice", "metadata": {"title": "Spec", "author": "alice"}, "lifecycle": "review", "expires_at": "2030-02-17T02:15:24.000Z", "file_paths": [], "module_name": null, "ttl_seconds": 604800.0, "workspace_id": "ws-5", "max_expires_at": null, "lifecycle_version": 1}	71
d2f476b4-9831-403d-8c54-28b55cf17949	48e7fe8b-a834-4fd1-be75-084d0e8684fd	1	created	\N	draft	bob	1896920125000	{"user_id": "bob", "metadata": {"title": "Plan", "author": "bob"}, "lifecycle": "review", "expires_at": "2030-02-17T02:15:25.000Z", "file_paths": [], "module_name": null, "ttl_seconds": 604800.0, "workspace_id": "ws-5", "max_expires_at": null, "lifecycle_version": 1}	72
7c74cc55-5588-4a23-9347-9a2c5d35a502	48e7fe8b-a834-4fd1-be75-084d0e8684fd	2	submitted	draft	in_review	bob	1896920126000	{"expires_at": "2030-02-10T04:15:26.000Z"}	73
41645b15-432d-407a-8f93-f80cbdbb4935	121c2bb7-b8fa-49d9-b83a-668508742e5e	3	reject	in_review	rejected	system	1896920124000	{"args": {"reason": "nobody reviewed it"}, "final": true}	70
562fb68f-c8df-4768-8379-8023388137e6	64c49bdb-ea70-4ad2-8be7-4ea1145894e2	1	created	\N	draft	bob	1896920126000	{"user_id": "bob", "metadata": {"title": "Notes", "author": "bob"}, "lifecycle": "review", "expires_at": "2030-02-17T02:15:26.000Z", "file_paths": [], "module_name": null, "ttl_seconds": 604800.0, "workspace_id": "ws-5", "max_expires_at": null, "lifecycle_version": 1}	74
7a140a5d-e53e-4514-858e-151b313ca3b5	64c49bdb-ea70-4ad2-8be7-4ea1145894e2	2	submitted	draft	in_review	bob	1896920127000	{"expires_at": "2030-02-10T04:15:27.000Z"}	75
54d9836f-a063-4dc0-907b-1af486c3f074	64c49bdb-ea70-4ad2-8be7-4ea1145894e2	3	approved	in_review	approved	carol	1896920127000	{"args": {"reviewer": "carol"}, "final": true}	76
8c4eb63d-bc8f-4d5f-88e2-8638d973a11c	377dc681-269f-4104-9e78-56e1b1676ad6	1	created	\N	draft	carol	1896920127000	{"user_id": "carol", "metadata": {"title": "Draft", "author": "carol"}, "lifecycle": "review", "expires_at": "2030-02-17T02:15:27.000Z", "file_paths": [], "module_name": null, "ttl_seconds": 604800.0, "workspace_id": "ws-5", "max_expires_at": null, "lifecycle_version": 1}	77
50e0dfcd-e646-4c5b-8a31-c84285e2c635	377dc681-269f-4104-9e78-56e1b1676ad6	2	submitted	draft	in_review	carol	1896920128000	{"expires_at": "2030-02-10T04:15:28.000Z"}	78
2b36220a-27bc-4777-85b5-4ceb92cb2a68	377dc681-269f-4104-9e78-56e1b1676ad6	3	request_changes	in_review	changes_requested	alice	1896920128000	{"expires_at": "2030-02-11T02:15:28.000Z"}	79
19b03ef2-0bce-4e53-a42e-88a28405e864	86171ef0-b73e-4957-ba09-29f0aa2b2647	1	created	\N	draft	carol	1896920128000	{"user_id": "carol", "metadata": {"title": "Idea", "author": "carol"}, "lifecycle": "review", "expires_at": "2030-02-17T02:15:28.000Z", "file_paths": [], "module_name": null, "ttl_seconds": 604800.0, "workspace_id": "ws-5", "max_expires_at": null, "lifecycle_version": 1}	80
f51141ce-135c-440f-af9f-d374e6c2656b	86171ef0-b73e-4957-ba09-29f0aa2b2647	2	abandon	draft	abandoned	carol	1896920129000	{"final": true}	81
7bc2a140-9bf4-4ea4-9e42-5d6d615f733d	c55fbc94-10c5-493a-8c5b-56036b5c40c5	2	touched	pending	pending	alice	1896920130000	{"expires_at": "2030-02-17T02:15:30.000Z"}	82
5badb90a-cb63-49ea-9a9e-19e54f3c2259	99ae5b6d-0dee-4176-9a76-353571756fca	8	note_added	in_progress	in_progress	alice	1896920130000	{"status": "pending", "file_path": "c.py", "memory_id": "m-3"}	83
\.


--
-- Data for Name: sessionflow_consumers; Type: TABLE DATA; Schema: public; Owner: -
--

COPY public.sessionflow_consumers (name, "position", updated_at) FROM stdin;
laggard	3	1893456001000
billing	61	1896912321000
\.


--
-- Data for Name: sessions; Type: TABLE DATA; Schema: public; Owner: -
--

COPY public.sessions (id, status, version, user_id, workspace_id, module_name, total_files, processed_files, failed_files, current_file, ttl_seconds, created_at, updated_at, expires_at, max_expires_at, closed_at, closed_by, failure_reason, deleted_at, due_at, data, lifecycle, lifecycle_version) FROM stdin;
c32b6ff6-8129-48f0-9797-cfb8666758c5	in_progress	2	ana	ws-1	auth	1	0	0	\N	5184000	1893456004000	1893456005000	1898640004000	\N	\N	\N	\N	\N	1898640004000	{"notes": [], "metadata": {}, "file_paths": ["big.csv"], "file_results": []}	session	1
ff86fd95-6152-449a-90b2-492820be7cca	pending	2	bob	ws-2	billing	0	0	0	\N	604800	1896912306000	1896912307000	1897517106000	\N	\N	\N	\N	\N	1897517106000	{"notes": [["inbox", null, "queued", 1896912307000]], "metadata": {}, "file_paths": [], "file_results": []}	session	1
ec8fd9cb-7281-4090-8f35-a942c9fbc057	pending	1	\N	\N	\N	0	0	0	\N	604800	1896912307000	1896912307000	1897517107000	\N	\N	\N	\N	\N	1897517107000	{"notes": [], "metadata": {"title": "Grüße ✓ — ünïcode"}, "file_paths": [], "file_results": []}	session	1
b2262051-70e3-420c-9182-7866de226fcb	in_progress	3	bob	ws-1	billing	0	0	0	\N	604800	1896912311000	1896912313000	1897517113000	1897776311000	\N	\N	\N	\N	1897517113000	{"notes": [], "metadata": {}, "file_paths": [], "file_results": []}	session	1
c9466c3a-26f4-43d9-8796-39e8cfdcec63	in_progress	3	carol	ws-2	\N	1	0	0	\N	604800	1896912310000	1896912311000	1897517110000	\N	\N	\N	\N	\N	1897517110000	{"notes": [], "metadata": {"owner": "carol", "stage": 2}, "file_paths": ["one.txt"], "file_results": []}	session	1
98311758-92a5-4dc9-bc3a-d6d2911e9b50	pending	2	alice	ws-1	\N	0	0	0	\N	604800	1896912319000	1896912320000	1897517119000	\N	\N	\N	\N	1896912320000	\N	{"notes": [], "metadata": {}, "file_paths": [], "file_results": []}	session	1
137b2a86-2c5e-4f51-aae1-491143116752	failed	4	alice	ws-1	auth	1	0	1	\N	604800	1896912316000	1896912317000	1897517116000	\N	1896912317000	alice	bad input	\N	\N	{"notes": [], "metadata": {}, "file_paths": ["z.py"], "file_results": [["z.py", "bad input", 1896912317000]]}	session	1
7dd81444-06ef-4a82-98b0-3987fc8b7ece	completed	7	alice	ws-2	billing	2	1	1	\N	604800	1896912313000	1896912314000	1897517113000	\N	1896912314000	alice	\N	\N	\N	{"notes": [["r1.csv", "m-2", "stored", 1896912314000], ["r2.csv", null, "skipped", 1896912314000]], "metadata": {}, "file_paths": ["r1.csv", "r2.csv"], "file_results": [["r1.csv", null, 1896912314000], ["r2.csv", "timeout", 1896912314000]]}	session	1
1012829f-cb49-44c1-8422-a8a42013c39d	completed	4	bob	ws-1	auth	0	0	0	\N	604800	1896912314000	1896912315000	1897517114000	\N	1896912315000	bob	\N	\N	\N	{"notes": [], "metadata": {"result": "ok"}, "file_paths": [], "file_results": []}	session	1
dd1ed06e-2a5b-474b-9c0d-a033af549990	failed	2	carol	ws-3	\N	0	0	0	\N	604800	1896912315000	1896912316000	1897517115000	\N	1896912316000	carol	cancelled by user	\N	\N	{"notes": [], "metadata": {}, "file_paths": [], "file_results": []}	session	1
f52c28a5-0512-4bbd-96ae-3a6f77d9ca6b	pending	1	erin	ws-3	\N	0	0	0	\N	604800	1896912317000	1896912317000	1897517117000	\N	\N	\N	\N	\N	1897517117000	{"notes": [], "metadata": {"batch": 1}, "file_paths": [], "file_results": []}	session	1
760293a3-6d7b-4708-b572-e4d281d5e82f	in_progress	2	dave	ws-3	\N	0	0	0	\N	604800	1896912317000	1896912318000	1897517117000	\N	\N	\N	\N	\N	1897517117000	{"notes": [], "metadata": {}, "file_paths": [], "file_results": []}	session	1
c8649700-f885-4d46-a5d5-920630f5ff9d	completed	3	dave	ws-3	import	0	0	0	\N	604800	1896912317000	1896912318000	1897517117000	\N	1896912318000	importer	\N	\N	\N	{"notes": [], "metadata": {}, "file_paths": [], "file_results": []}	session	1
0e037c40-7af5-4118-85cf-2f7e0a96721c	pending	1	frank	ws-4	auth	0	0	0	\N	604800	1896912318000	1896912318000	1897517118000	\N	\N	\N	\N	\N	1897517118000	{"notes": [], "metadata": {}, "file_paths": [], "file_results": []}	session	1
fbcce73a-2cd3-4467-b331-c3bef0291f88	pending	1	frank	ws-4	auth	0	0	0	\N	604800	1896912318000	1896912318000	1897517118000	\N	\N	\N	\N	\N	1897517118000	{"notes": [], "metadata": {}, "file_paths": [], "file_results": []}	session	1
5d3eeb66-2a76-4d61-a24a-f7d514f81f7c	pending	1	frank	ws-4	auth	0	0	0	\N	604800	1896912318000	1896912318000	1897517118000	\N	\N	\N	\N	\N	1897517118000	{"notes": [], "metadata": {}, "file_paths": [], "file_results": []}	session	1
df1a4159-6341-4753-aa36-aa7b372db675	completed	4	bob	ws-2	\N	0	0	0	\N	604800	1896912320000	1896912321000	1897517120000	\N	1896912321000	bob	\N	1896912321000	\N	{"notes": [], "metadata": {}, "file_paths": [], "file_results": []}	session	1
0f1528c4-a131-4c20-b904-17bc2963bd3f	expired	4	bob	ws-1	auth	1	1	0	\N	600	1896912322000	1896912923000	1896912922000	\N	1896912923000	system	\N	\N	\N	{"notes": [], "metadata": {}, "file_paths": ["q.py"], "file_results": [["q.py", null, 1896912323000]]}	session	1
a92b8636-0442-4b96-8e75-ca672e24c1d1	expired	2	alice	ws-2	\N	0	0	0	\N	600	1896912321000	1896912923000	1896912921000	\N	1896912923000	system	\N	\N	\N	{"notes": [], "metadata": {}, "file_paths": [], "file_results": []}	session	1
121c2bb7-b8fa-49d9-b83a-668508742e5e	rejected	3	alice	ws-5	\N	0	0	0	\N	604800	1896912923000	1896920124000	1896920124000	\N	1896920124000	system	nobody reviewed it	\N	\N	{"notes": [], "metadata": {"title": "Old spec", "author": "alice"}, "file_paths": [], "file_results": []}	review	1
3e337f7e-e65f-4614-b876-db0344f37260	draft	1	alice	ws-5	\N	0	0	0	\N	604800	1896920124000	1896920124000	1897524924000	\N	\N	\N	\N	\N	1897524924000	{"notes": [], "metadata": {"title": "Spec", "author": "alice"}, "file_paths": [], "file_results": []}	review	1
c55fbc94-10c5-493a-8c5b-56036b5c40c5	pending	2	alice	ws-1	auth	2	0	0	\N	604800	1896912305000	1896920130000	1897524930000	\N	\N	\N	\N	\N	1897524930000	{"notes": [], "metadata": {"tags": ["x", "y"], "nested": {"deep": [1, {"k": true}], "none": null, "ratio": 1.5}, "ticket": "T-1"}, "file_paths": ["src/a.py", "src/b.py"], "file_results": []}	session	1
99ae5b6d-0dee-4176-9a76-353571756fca	in_progress	8	alice	ws-1	auth	3	1	1	c.py	604800	1896912308000	1896920130000	1897517110000	\N	\N	\N	\N	\N	1897517110000	{"notes": [["a.py", "m-1", "stored", 1896912309000], ["c.py", "m-3", "pending", 1896920130000]], "metadata": {}, "file_paths": ["a.py", "b.py", "c.py"], "file_results": [["a.py", null, 1896912309000], ["b.py", "parse error", 1896912309000]]}	session	1
48e7fe8b-a834-4fd1-be75-084d0e8684fd	in_review	2	bob	ws-5	\N	0	0	0	\N	604800	1896920125000	1896920126000	1896927326000	\N	\N	\N	\N	\N	1896927326000	{"notes": [], "metadata": {"title": "Plan", "author": "bob"}, "file_paths": [], "file_results": []}	review	1
64c49bdb-ea70-4ad2-8be7-4ea1145894e2	approved	3	bob	ws-5	\N	0	0	0	\N	604800	1896920126000	1896920127000	1896927327000	\N	1896920127000	carol	\N	\N	\N	{"notes": [], "metadata": {"title": "Notes", "author": "bob"}, "file_paths": [], "file_results": []}	review	1
377dc681-269f-4104-9e78-56e1b1676ad6	changes_requested	3	carol	ws-5	\N	0	0	0	\N	604800	1896920127000	1896920128000	1897006528000	\N	\N	\N	\N	\N	1897006528000	{"notes": [], "metadata": {"title": "Draft", "author": "carol"}, "file_paths": [], "file_results": []}	review	1
86171ef0-b73e-4957-ba09-29f0aa2b2647	abandoned	2	carol	ws-5	\N	0	0	0	\N	604800	1896920128000	1896920129000	1897524928000	\N	1896920129000	carol	\N	\N	\N	{"notes": [], "metadata": {"title": "Idea", "author": "carol"}, "file_paths": [], "file_results": []}	review	1
\.


--
-- Name: session_events_position_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.session_events_position_seq', 83, true);


--
-- Name: alembic_version alembic_version_pkc; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.alembic_version
    ADD CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num);


--
-- Name: session_events pk_session_events; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.session_events
    ADD CONSTRAINT pk_session_events PRIMARY KEY (record_id);


--
-- Name: sessionflow_consumers pk_sessionflow_consumers; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.sessionflow_consumers
    ADD CONSTRAINT pk_sessionflow_consumers PRIMARY KEY (name);


--
-- Name: sessions pk_sessions; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.sessions
    ADD CONSTRAINT pk_sessions PRIMARY KEY (id);


--
-- Name: session_events uq_session_events_session_id_version; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.session_events
    ADD CONSTRAINT uq_session_events_session_id_version UNIQUE (session_id, version);


--
-- Name: ix_session_events_position; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX ix_session_events_position ON public.session_events USING btree ("position");


--
-- Name: ix_sessions_created_at_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_sessions_created_at_id ON public.sessions USING btree (created_at, id);


--
-- Name: ix_sessions_due_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_sessions_due_at ON public.sessions USING btree (due_at);


--
-- Name: ix_sessions_lifecycle_created_at_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_sessions_lifecycle_created_at_id ON public.sessions USING btree (lifecycle, created_at, id);


--
-- Name: ix_sessions_status_created_at_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_sessions_status_created_at_id ON public.sessions USING btree (status, created_at, id);


--
-- Name: ix_sessions_user_id_created_at_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_sessions_user_id_created_at_id ON public.sessions USING btree (user_id, created_at, id);


--
-- Name: ix_sessions_user_id_status_created_at_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_sessions_user_id_status_created_at_id ON public.sessions USING btree (user_id, status, created_at, id);


--
-- Name: ix_sessions_workspace_id_created_at_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_sessions_workspace_id_created_at_id ON public.sessions USING btree (workspace_id, created_at, id);


--
-- Name: sessions sessionflow_deadline_insert; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER sessionflow_deadline_insert AFTER INSERT ON public.sessions FOR EACH ROW WHEN ((new.due_at IS NOT NULL)) EXECUTE FUNCTION public.sessionflow_notify_deadline();


--
-- Name: sessions sessionflow_deadline_update; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER sessionflow_deadline_update AFTER UPDATE OF due_at ON public.sessions FOR EACH ROW WHEN (((new.due_at IS NOT NULL) AND ((old.due_at IS NULL) OR (new.due_at < old.due_at)))) EXECUTE FUNCTION public.sessionflow_notify_deadline();


--
-- Name: session_events sessionflow_event_position; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER sessionflow_event_position BEFORE INSERT ON public.session_events FOR EACH ROW EXECUTE FUNCTION public.sessionflow_event_position();


--
-- Name: session_events sessionflow_events_insert; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER sessionflow_events_insert AFTER INSERT ON public.session_events FOR EACH STATEMENT EXECUTE FUNCTION public.sessionflow_notify_events();


--
-- PostgreSQL database dump complete
--

\unrestrict bMUmfLQOiNKTsNq9cL1lY8EIKoHvjzN5C1TjSeWdPC5cQEUkC7798nCCj44DdV6

