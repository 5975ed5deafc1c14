PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE alembic_version (
	version_num VARCHAR(32) NOT NULL, 
	CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
INSERT INTO alembic_version VALUES('0003');
CREATE TABLE session_events (
	record_id CHAR(32) NOT NULL, 
	session_id CHAR(32) NOT NULL, 
	version INTEGER NOT NULL, 
	event VARCHAR(32) NOT NULL, 
	source_state VARCHAR(64), 
	target_state VARCHAR(64) NOT NULL, 
	performer_id VARCHAR(256) NOT NULL, 
	timestamp BIGINT NOT NULL, 
	payload JSON NOT NULL, 
	CONSTRAINT pk_session_events PRIMARY KEY (record_id), 
	CONSTRAINT uq_session_events_session_id_version UNIQUE (session_id, version)
);
INSERT INTO session_events VALUES('2809f3ad398848c7934c7064bb959be7','db5109a0ace44defac49bf8e9f9dae09',1,'created',NULL,'pending','alice',1793491200000,'{"user_id":"alice","workspace_id":"ws","module_name":"auth","file_paths":["a.py","b.py","c.py"],"metadata":{"k":[1,2]},"ttl_seconds":3600.0,"expires_at":"2026-11-01T01:00:00.000Z","max_expires_at":null}');
INSERT INTO session_events VALUES('cc9ef34c1c51409fa175f65819cb68cd','db5109a0ace44defac49bf8e9f9dae09',2,'started','pending','in_progress','alice',1793491200000,'{}');
INSERT INTO session_events VALUES('cb16c54343b540cd8b03d41760154bae','db5109a0ace44defac49bf8e9f9dae09',3,'file_recorded','in_progress','in_progress','alice',1793491200000,'{"path":"b.py","error":"parse error"}');
INSERT INTO session_events VALUES('bf6ada98956048b68aa5f9f25f3086bd','db5109a0ace44defac49bf8e9f9dae09',4,'file_recorded','in_progress','in_progress','alice',1793491200000,'{"path":"a.py","error":null}');
INSERT INTO session_events VALUES('72ffd26ecd8d45889b5c7a47f7821de0','db5109a0ace44defac49bf8e9f9dae09',5,'file_recorded','in_progress','in_progress','alice',1793491200000,'{"path":"c.py","error":"timeout"}');
INSERT INTO session_events VALUES('6b591377fe4d47a0a506d708c0de8f16','db5109a0ace44defac49bf8e9f9dae09',6,'note_added','in_progress','in_progress','alice',1793491200000,'{"file_path":"a.py","memory_id":"m-1","status":"stored"}');
INSERT INTO session_events VALUES('e1f0bd20b8454b519d4138c3916c89c5','db5109a0ace44defac49bf8e9f9dae09',7,'completed','in_progress','completed','alice',1793491200000,'{}');
INSERT INTO session_events VALUES('4c7c41ab45a549c4b36add4a7906aca2','8e044dd62ab24700b6d9b0c3efd68991',1,'created',NULL,'pending','bob',1793491200000,'{"user_id":"bob","workspace_id":null,"module_name":null,"file_paths":["x.py","y.py"],"metadata":{},"ttl_seconds":600.0,"expires_at":"2026-11-01T00:10:00.000Z","max_expires_at":null}');
INSERT INTO session_events VALUES('9bb5bf00a4a74b308ade45535f16a734','8e044dd62ab24700b6d9b0c3efd68991',2,'started','pending','in_progress','bob',1793491200000,'{}');
INSERT INTO session_events VALUES('72d824cc4215412fbb79476b0ae34e09','8e044dd62ab24700b6d9b0c3efd68991',3,'file_recorded','in_progress','in_progress','bob',1793491200000,'{"path":"y.py","error":"boom"}');
INSERT INTO session_events VALUES('cde0ea01e15a490795317e92b3d763f9','8e044dd62ab24700b6d9b0c3efd68991',4,'updated','in_progress','in_progress','bob',1793491200000,'{"current_file":"x.py"}');
INSERT INTO session_events VALUES('e3d63daab0214936a6a2bb63fe99142e','8e044dd62ab24700b6d9b0c3efd68991',5,'touched','in_progress','in_progress','bob',1793491200000,'{"expires_at":"2026-11-01T00:10:00.000Z"}');
INSERT INTO session_events VALUES('c17090e27c1b4819804c1aaa5e8be993','31b739d2a5ba469b99d54b1ad0e47a23',1,'created',NULL,'pending','carol',1793491200000,'{"user_id":"carol","workspace_id":null,"module_name":null,"file_paths":["z.py"],"metadata":{},"ttl_seconds":300.0,"expires_at":"2026-11-01T00:05:00.000Z","max_expires_at":null}');
INSERT INTO session_events VALUES('92979382f05e4aa4a5d7b34e09799c1a','31b739d2a5ba469b99d54b1ad0e47a23',2,'failed','pending','failed','carol',1793491200000,'{"reason":"gave up"}');
INSERT INTO session_events VALUES('1ae5ebc0f0124179ad8104baa7606afd','5a0b3207dc154362a2e8b235bd9b4a91',1,'created',NULL,'pending','dave',1793491200000,'{"user_id":"dave","workspace_id":null,"module_name":null,"file_paths":["q.py"],"metadata":{},"ttl_seconds":60.0,"expires_at":"2026-11-01T00:01:00.000Z","max_expires_at":null}');
INSERT INTO session_events VALUES('229e6a55194d46619bf4e9471d92466d','5a0b3207dc154362a2e8b235bd9b4a91',2,'file_recorded','pending','pending','dave',1793491200000,'{"path":"q.py","error":"bad"}');
INSERT INTO session_events VALUES('481364a7b97c415e83c90211549fd0a5','84cc48d8b76a49ec9b28c79eb0eb0d44',1,'created',NULL,'pending','erin',1793491200000,'{"user_id":"erin","workspace_id":null,"module_name":null,"file_paths":[],"metadata":{},"ttl_seconds":120.0,"expires_at":"2026-11-01T00:02:00.000Z","max_expires_at":null}');
INSERT INTO session_events VALUES('294180fcb4d940da9a585fb4d124b701','84cc48d8b76a49ec9b28c79eb0eb0d44',2,'deleted','pending','pending','erin',1793491200000,'{}');
INSERT INTO session_events VALUES('c45f3543f2d94e3c9d09b57375da4e68','47cc1108a4e248719b1ab5f4b24e3afc',1,'created',NULL,'pending','frank',1793491200000,'{"user_id":"frank","workspace_id":null,"module_name":null,"file_paths":["p.py"],"metadata":{},"ttl_seconds":10800.0,"expires_at":"2026-11-01T03:00:00.000Z","max_expires_at":null}');
INSERT INTO session_events VALUES('53dbcd0bfc1245d788dacc2d4d82b566','5a0b3207dc154362a2e8b235bd9b4a91',3,'expired','pending','expired','system',1793491380000,'{}');
CREATE TABLE IF NOT EXISTS "sessions" (
	id CHAR(32) NOT NULL, 
	status VARCHAR(64) NOT NULL, 
	version INTEGER NOT NULL, 
	user_id VARCHAR(256), 
	workspace_id VARCHAR(256), 
	module_name VARCHAR(256), 
	total_files INTEGER NOT NULL, 
	processed_files INTEGER NOT NULL, 
	failed_files INTEGER NOT NULL, 
	current_file TEXT, 
	ttl_seconds FLOAT NOT NULL, 
	created_at BIGINT NOT NULL, 
	updated_at BIGINT NOT NULL, 
	expires_at BIGINT, 
	max_expires_at BIGINT, 
	closed_at BIGINT, 
	closed_by VARCHAR(256), 
	failure_reason TEXT, 
	deleted_at BIGINT, 
	due_at BIGINT, 
	data JSON NOT NULL, 
	lifecycle VARCHAR(128) DEFAULT 'session' NOT NULL, 
	lifecycle_version INTEGER DEFAULT '1' NOT NULL, 
	CONSTRAINT pk_sessions PRIMARY KEY (id)
);
INSERT INTO sessions VALUES('db5109a0ace44defac49bf8e9f9dae09','completed',7,'alice','ws','auth',3,1,2,NULL,3600.0,1793491200000,1793491200000,1793494800000,NULL,1793491200000,'alice',NULL,NULL,NULL,'{"file_paths":["a.py","b.py","c.py"],"file_results":[["b.py","parse error",1793491200000],["a.py",null,1793491200000],["c.py","timeout",1793491200000]],"notes":[["a.py","m-1","stored",1793491200000]],"metadata":{"k":[1,2]}}','session',1);
INSERT INTO sessions VALUES('8e044dd62ab24700b6d9b0c3efd68991','in_progress',5,'bob',NULL,NULL,2,0,1,'x.py',600.0,1793491200000,1793491200000,1793491800000,NULL,NULL,NULL,NULL,NULL,1793491800000,'{"file_paths":["x.py","y.py"],"file_results":[["y.py","boom",1793491200000]],"notes":[],"metadata":{}}','session',1);
INSERT INTO sessions VALUES('31b739d2a5ba469b99d54b1ad0e47a23','failed',2,'carol',NULL,NULL,1,0,0,NULL,300.0,1793491200000,1793491200000,1793491500000,NULL,1793491200000,'carol','gave up',NULL,NULL,'{"file_paths":["z.py"],"file_results":[],"notes":[],"metadata":{}}','session',1);
INSERT INTO sessions VALUES('5a0b3207dc154362a2e8b235bd9b4a91','expired',3,'dave',NULL,NULL,1,0,1,NULL,60.0,1793491200000,1793491380000,1793491260000,NULL,1793491380000,'system',NULL,NULL,NULL,'{"file_paths":["q.py"],"file_results":[["q.py","bad",1793491200000]],"notes":[],"metadata":{}}','session',1);
INSERT INTO sessions VALUES('84cc48d8b76a49ec9b28c79eb0eb0d44','pending',2,'erin',NULL,NULL,0,0,0,NULL,120.0,1793491200000,1793491200000,1793491320000,NULL,NULL,NULL,NULL,1793491200000,NULL,'{"file_paths":[],"file_results":[],"notes":[],"metadata":{}}','session',1);
INSERT INTO sessions VALUES('47cc1108a4e248719b1ab5f4b24e3afc','pending',1,'frank',NULL,NULL,1,0,0,NULL,10800.0,1793491200000,1793491200000,1793502000000,NULL,NULL,NULL,NULL,NULL,1793502000000,'{"file_paths":["p.py"],"file_results":[],"notes":[],"metadata":{}}','session',1);
CREATE INDEX ix_sessions_workspace_id_created_at_id ON sessions (workspace_id, created_at, id);
CREATE INDEX ix_sessions_user_id_created_at_id ON sessions (user_id, created_at, id);
CREATE INDEX ix_sessions_due_at ON sessions (due_at);
CREATE INDEX ix_sessions_status_created_at_id ON sessions (status, created_at, id);
CREATE INDEX ix_sessions_created_at_id ON sessions (created_at, id);
COMMIT;
