<?php
/*
	The console's sign-in token (the service verifies it: secretary/access/console_tokens.py):
	v1.<base64url JSON {domain_uuid, user, scope, exp, nonce}>.<base64url HMAC-SHA256 of "v1.<payload>">
	Kept free of FusionPBX's includes so it can be run (and tested) on its own.
*/

function ai_secretary_base64url($bytes) {
	return rtrim(strtr(base64_encode($bytes), '+/', '-_'), '=');
}

function ai_secretary_console_token($secret, $domain_uuid, $user, $scope, $lifetime, $now) {
	$payload = json_encode(array(
		'domain_uuid' => (string) $domain_uuid,
		'user' => (string) $user,
		'scope' => $scope === 'superadmin' ? 'superadmin' : 'domain',
		'exp' => (int) $now + (int) $lifetime,
		'nonce' => bin2hex(random_bytes(16)),
	));
	$body = ai_secretary_base64url($payload);
	$signature = ai_secretary_base64url(hash_hmac('sha256', 'v1.' . $body, $secret, true));
	return 'v1.' . $body . '.' . $signature;
}

?>
